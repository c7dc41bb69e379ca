"""Round trips (property-based), digests, provider calls per object, rotation and rewrap, inspect."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeshield.datasets import sha256_file
from pipeshield.envelope import (
    ContextMismatchError,
    EnvelopeResult,
    KeyVersionRefusedError,
    UnsupportedEnvelopeError,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    inspect_file,
    read_header,
    rewrap_file,
)
from pipeshield.keys import LocalKeyProvider
from tests.envelope.conftest import CHUNK, KEY, CountingProvider

CHUNK_SIZES = st.sampled_from([1 << 16, 1 << 17, 1 << 20])


def _boundary_sizes(chunk: int) -> st.SearchStrategy[int]:
    near = st.sampled_from([0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk - 1, 3 * chunk + 5])
    return st.one_of(near, st.integers(min_value=0, max_value=3 * chunk + 7))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), chunk=CHUNK_SIZES, seed=st.integers(0, 2**32))
def test_round_trip_over_sizes_and_chunk_sizes(provider: LocalKeyProvider, data: st.DataObject, chunk: int,
                                               seed: int) -> None:
    size = data.draw(_boundary_sizes(chunk), label="size")
    plain = random.Random(seed).randbytes(size)
    sealed = io.BytesIO()
    result = encrypt_stream(io.BytesIO(plain), sealed, provider, key_name=KEY, context=b"ctx", chunk_size=chunk,
                            digests=True)
    blob = sealed.getvalue()
    chunks = max(1, -(-size // chunk))
    assert len(blob) == len(read_header(io.BytesIO(blob)).to_bytes()) + size + 16 * chunks
    out = io.BytesIO()
    opened = decrypt_stream(io.BytesIO(blob), out, provider, context=b"ctx", digests=True)
    assert out.getvalue() == plain
    assert opened == result
    assert result.plaintext_sha256 == hashlib.sha256(plain).hexdigest()
    assert result.ciphertext_sha256 == hashlib.sha256(blob).hexdigest()
    assert (result.plaintext_size, result.ciphertext_size) == (size, len(blob))


def test_file_round_trip_reports_digests_sizes_and_key(provider: LocalKeyProvider, tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(5 * CHUNK + 3))
    enc = encrypt_file(src, tmp_path / "data.pse", provider, key_name=KEY, context={"dataset": "d"}, chunk_size=CHUNK,
                       digests=True)
    dec = decrypt_file(tmp_path / "data.pse", tmp_path / "data.out", provider, context={"dataset": "d"},
                       digests=True)
    assert (tmp_path / "data.out").read_bytes() == src.read_bytes()
    assert enc == dec
    assert enc == EnvelopeResult(
        plaintext_sha256=sha256_file(src), ciphertext_sha256=sha256_file(tmp_path / "data.pse"),
        plaintext_size=src.stat().st_size, ciphertext_size=(tmp_path / "data.pse").stat().st_size,
        key_name=KEY, key_version=1,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "data.out", "data.pse", "keyring"]


def test_ciphertext_hides_the_plaintext_and_differs_each_time(provider: LocalKeyProvider, tmp_path: Path) -> None:
    plain = b"secret-feature-value;" * 10000
    outs = []
    for _ in range(2):
        out = io.BytesIO()
        encrypt_stream(io.BytesIO(plain), out, provider, key_name=KEY, context="c")
        outs.append(out.getvalue())
    assert b"secret-feature-value" not in outs[0]
    assert outs[0] != outs[1]  # fresh data key, salt and nonce prefix per object


def test_digests_are_computed_only_when_asked_for(provider: LocalKeyProvider) -> None:
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(b"abc" * 100000), out, provider, key_name=KEY, context="c")
    assert result.plaintext_sha256 is None and result.ciphertext_sha256 is None
    back = io.BytesIO()
    assert decrypt_stream(io.BytesIO(out.getvalue()), back, provider, context="c").plaintext_size == 300000
    assert back.getvalue() == b"abc" * 100000


@pytest.mark.parametrize("chunk_size", [1000, 1 << 15, 1 << 25, 3 << 16])
def test_unsupported_chunk_sizes_are_refused(provider: LocalKeyProvider, chunk_size: int) -> None:
    with pytest.raises(UnsupportedEnvelopeError, match="chunk size"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), provider, key_name=KEY, context="c", chunk_size=chunk_size)


def test_exactly_one_provider_call_per_object(counting: CountingProvider, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(7 * CHUNK + 11))
    encrypt_file(src, tmp_path / "big.pse", counting, key_name=KEY, context="c", chunk_size=CHUNK)
    assert dict(counting.calls) == {"generate_data_key": 1}
    counting.calls.clear()
    decrypt_file(tmp_path / "big.pse", tmp_path / "big.out", counting, context="c")
    assert dict(counting.calls) == {"unwrap": 1}
    counting.calls.clear()
    rewrap_file(tmp_path / "big.pse", counting)
    assert dict(counting.calls) == {"rewrap": 1}
    counting.calls.clear()
    with pytest.raises(ContextMismatchError):
        decrypt_file(tmp_path / "big.pse", tmp_path / "big.out2", counting, context="other")
    assert dict(counting.calls) == {}  # a wrong context is refused before asking the provider


def test_rotation_rewrap_and_min_decryption_version(provider: LocalKeyProvider, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(2 * CHUNK + 9))
    for name in ("rewrapped.pse", "stale.pse"):
        encrypt_file(src, tmp_path / name, provider, key_name=KEY, context="m", chunk_size=CHUNK)
    before = (tmp_path / "rewrapped.pse").read_bytes()
    old_header_len = len(read_header(io.BytesIO(before)).to_bytes())

    provider.rotate(KEY)
    result = rewrap_file(tmp_path / "rewrapped.pse", provider)
    assert (result.old_version, result.new_version) == (1, 2)
    after = (tmp_path / "rewrapped.pse").read_bytes()
    header = read_header(io.BytesIO(after))
    assert header.key_version == 2 and header.wrapped_key.startswith("vault:v2:")
    assert after[len(header.to_bytes()):] == before[old_header_len:]  # body untouched: no re-encryption
    assert result.ciphertext_sha256 == sha256_file(tmp_path / "rewrapped.pse")

    provider.set_min_decryption_version(KEY, 2)
    decrypted = decrypt_file(tmp_path / "rewrapped.pse", tmp_path / "model.out", provider, context="m")
    assert (tmp_path / "model.out").read_bytes() == src.read_bytes()
    assert decrypted.key_version == 2
    with pytest.raises(KeyVersionRefusedError, match=r"version 1 is retired \(min_decryption_version is 2\).*Rewrap"):
        decrypt_file(tmp_path / "stale.pse", tmp_path / "stale.out", provider, context="m")
    assert not (tmp_path / "stale.out").exists()
    with pytest.raises(KeyVersionRefusedError, match="cannot rewrap"):
        rewrap_file(tmp_path / "stale.pse", provider)
    assert inspect_file(tmp_path / "stale.pse")["key_version"] == 1  # the failed rewrap left it as it was


def test_inspect_needs_no_key_and_shows_no_key_material(provider: LocalKeyProvider, tmp_path: Path) -> None:
    src = tmp_path / "d.bin"
    src.write_bytes(os.urandom(3 * CHUNK + 5))
    encrypt_file(src, tmp_path / "d.pse", provider, key_name=KEY, context={"run": "r9"}, chunk_size=CHUNK)
    info = inspect_file(tmp_path / "d.pse")
    with open(tmp_path / "d.pse", "rb") as handle:
        header = read_header(handle)
    assert info == {
        "format": "pipeshield envelope v1", "algorithm": "AES-256-GCM, HKDF-SHA-256", "chunk_size": CHUNK,
        "key_name": KEY, "key_version": 1,
        "wrapped_key_sha256": hashlib.sha256(header.wrapped_key.encode()).hexdigest()[:16],
        "context": '{"run":"r9"}', "header_size": len(header.to_bytes()),
        "file_size": (tmp_path / "d.pse").stat().st_size, "chunks": 4, "plaintext_size": 3 * CHUNK + 5,
    }
    assert header.wrapped_key not in repr(info) and header.wrapped_key not in repr(header)
