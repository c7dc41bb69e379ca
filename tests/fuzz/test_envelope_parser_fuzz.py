"""Fuzz target for the envelope header and stream parser (hypothesis-driven).

Runs briefly in ``make test``; run longer with ``PIPESHIELD_FUZZ_EXAMPLES=20000``. Whatever the bytes,
the parser and the decryptor either succeed or raise an ``EnvelopeError`` (never another exception),
never read a header past its bounds, and never release plaintext for a modified envelope.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeshield.envelope import EnvelopeError, decrypt_file, decrypt_stream, encrypt_stream, read_header
from pipeshield.envelope._header import MAGIC, MAX_HEADER
from pipeshield.keys import LocalKeyProvider
from tests.fuzz._hostile import FUZZ

KEY = "fuzz"
CONTEXT = b"fuzz-context"


@pytest.fixture(scope="module")
def fuzz_provider(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyProvider:
    provider = LocalKeyProvider(tmp_path_factory.mktemp("fuzz-keyring"), os.urandom(32))
    provider.create_key(KEY)
    return provider


@pytest.fixture(scope="module")
def seed_envelope(fuzz_provider: LocalKeyProvider) -> tuple[bytes, bytes]:
    plain = os.urandom(2 * (1 << 16) + 77)
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(plain), out, fuzz_provider, key_name=KEY, context=CONTEXT, chunk_size=1 << 16)
    return plain, out.getvalue()


class _CountingReader(io.BytesIO):
    """Tracks the largest single read request (the parser must never ask for more than the header bound)."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        self.largest = max(self.largest, size if size is not None and size >= 0 else len(self.getvalue()))
        return super().read(size)


@pytest.mark.reliability("hostile input", "fuzz: envelope header parser on arbitrary bytes",
                         "parses exactly or EnvelopeError; never reads past the header bound")
@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.binary(max_size=300).map(lambda b: MAGIC + b)))
def test_header_parser_on_arbitrary_bytes(data: bytes, reliability) -> None:
    reliability(fuzz_examples=1)
    reader = _CountingReader(data)
    try:
        header = read_header(reader)
    except EnvelopeError:
        pass
    else:
        assert header.to_bytes() == data[: len(header.to_bytes())]  # parse/serialize is exact
    assert reader.largest <= MAX_HEADER


_MUTATION = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=1, max_value=255),
)


def _mutate(blob: bytes, kind: str, where: int, value: int) -> bytes:
    at = where % len(blob)
    if kind == "flip":
        return blob[:at] + bytes([blob[at] ^ value]) + blob[at + 1 :]
    if kind == "insert":
        return blob[:at] + bytes([value]) * value + blob[at:]
    if kind == "delete":
        return blob[:at] + blob[at + value :]
    if kind == "truncate":
        return blob[:at]
    return blob[:at] + blob[at : at + value * 97] + blob[at:]


@pytest.mark.reliability("hostile input", "fuzz: mutated envelopes (flip, insert, delete, truncate, duplicate)",
                         "EnvelopeError; only verified plaintext released; no output file")
@FUZZ
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_stream_parser_on_mutated_envelopes(
    fuzz_provider: LocalKeyProvider, seed_envelope: tuple[bytes, bytes], tmp_path: Path, mutations: list, reliability
) -> None:
    reliability(fuzz_examples=1)
    plain, blob = seed_envelope
    for mutation in mutations:
        blob = _mutate(blob, *mutation) or b"\0"
    if blob == seed_envelope[1]:
        return
    out = io.BytesIO()
    with pytest.raises(EnvelopeError):
        decrypt_stream(io.BytesIO(blob), out, fuzz_provider, context=CONTEXT)
    assert plain.startswith(out.getvalue())  # only verified chunks, in order, ever reached the stream
    target = tmp_path / "fuzz-out"
    (tmp_path / "fuzz-in").write_bytes(blob)
    with pytest.raises(EnvelopeError):
        decrypt_file(tmp_path / "fuzz-in", target, fuzz_provider, context=CONTEXT)
    assert not target.exists()
