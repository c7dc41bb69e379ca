"""The tamper matrix: every attack gives an error naming its cause and leaves zero plaintext bytes behind."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeshield.envelope import (
    ContextMismatchError,
    EnvelopeError,
    EnvelopeKeyError,
    IntegrityError,
    KeyMismatchError,
    KeyVersionRefusedError,
    MalformedHeaderError,
    NotAnEnvelopeError,
    TrailingDataError,
    TruncatedEnvelopeError,
    UnsupportedEnvelopeError,
    UnwrapError,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    read_header,
)
from pipeshield.keys import LocalKeyProvider
from tests.envelope.conftest import CHUNK, KEY

CONTEXT = {"run_id": "r1", "artifact": "model.pkl"}
SEALED = CHUNK + 16


def _envelope(provider: LocalKeyProvider, tmp_path: Path, size: int) -> tuple[bytes, bytes, int]:
    """(plaintext, envelope bytes, header length) for a fresh envelope of ``size`` plaintext bytes."""
    plain = os.urandom(size)
    (tmp_path / "plain").write_bytes(plain)
    encrypt_file(tmp_path / "plain", tmp_path / "env", provider, key_name=KEY, context=CONTEXT, chunk_size=CHUNK)
    blob = (tmp_path / "env").read_bytes()
    return plain, blob, len(read_header(io.BytesIO(blob)).to_bytes())


def _refused(provider: LocalKeyProvider, tmp_path: Path, blob: bytes, error: type[Exception],
             match: str | None = None, context: object = CONTEXT, **kwargs: object) -> None:
    """Decrypting ``blob`` raises ``error``; the destination does not exist and no temp file is left."""
    src, out = tmp_path / "tampered", tmp_path / "out" / "plain.out"
    out.parent.mkdir(exist_ok=True)
    src.write_bytes(blob)
    with pytest.raises(error, match=match):
        decrypt_file(src, out, provider, context=context, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def _chunks(blob: bytes, header_len: int) -> list[bytes]:
    body = blob[header_len:]
    return [body[i : i + SEALED] for i in range(0, len(body), SEALED)]


SIZE = 3 * CHUNK + 1000  # three full chunks and a short final one


@pytest.mark.reliability("hostile input", "envelope truncated at a chunk boundary",
                         "TruncatedEnvelopeError; no output file")
@pytest.mark.parametrize("size", [3 * CHUNK, SIZE])
def test_truncated_at_a_chunk_boundary(provider: LocalKeyProvider, tmp_path: Path, size: int) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, size)
    cut = blob[: header_len + 2 * SEALED]
    _refused(provider, tmp_path, cut, TruncatedEnvelopeError, "ends after chunk 1, which is not its final chunk")


@pytest.mark.reliability("hostile input", "envelope truncated inside a chunk",
                         "IntegrityError or TruncatedEnvelopeError; no output file")
def test_truncated_inside_a_chunk(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, SIZE)
    _refused(provider, tmp_path, blob[: header_len + SEALED + 500], IntegrityError,
             "chunk 1 failed authentication: the envelope was truncated inside this chunk")
    _refused(provider, tmp_path, blob[:-1], IntegrityError, "chunk 3 failed authentication")
    _refused(provider, tmp_path, blob[: header_len + 3 * SEALED + 10], TruncatedEnvelopeError, "less than a tag")


@pytest.mark.reliability("hostile input", "envelope truncated inside the header",
                         "MalformedHeaderError; no output file")
def test_truncated_inside_the_header(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, 10)
    _refused(provider, tmp_path, blob[: header_len - 1], MalformedHeaderError, "header truncated")
    _refused(provider, tmp_path, blob[:header_len], TruncatedEnvelopeError, "header but no chunks")


@pytest.mark.reliability("hostile input", "envelope chunk dropped",
                         "IntegrityError naming the chunk; no output file")
def test_dropped_chunk(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, SIZE)
    chunks = _chunks(blob, header_len)
    tampered = blob[:header_len] + b"".join(chunks[:1] + chunks[2:])
    _refused(provider, tmp_path, tampered, IntegrityError, "chunk 1 failed authentication.*dropped, reordered")


@pytest.mark.reliability("hostile input", "envelope chunks swapped",
                         "IntegrityError naming the chunk; no output file")
def test_swapped_chunks(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, SIZE)
    c = _chunks(blob, header_len)
    _refused(provider, tmp_path, blob[:header_len] + c[1] + c[0] + c[2] + c[3], IntegrityError,
             "chunk 0 failed authentication")


@pytest.mark.reliability("hostile input", "envelope chunk duplicated",
                         "IntegrityError naming the chunk; no output file")
def test_duplicated_chunk(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, SIZE)
    c = _chunks(blob, header_len)
    _refused(provider, tmp_path, blob[:header_len] + c[0] + c[1] + c[1] + c[2] + c[3], IntegrityError,
             "chunk 2 failed authentication")


@pytest.mark.reliability("hostile input", "chunk or byte appended after the final chunk",
                         "TrailingDataError; no output file")
def test_appended_chunk_after_a_full_final_chunk(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, 2 * CHUNK)
    c = _chunks(blob, header_len)
    _refused(provider, tmp_path, blob + c[0], TrailingDataError, "data follows the final chunk 1")
    _refused(provider, tmp_path, blob + b"x", TrailingDataError, "bytes were appended")


@pytest.mark.reliability("hostile input", "bytes appended after a short final chunk",
                         "IntegrityError; no output file")
def test_appended_bytes_after_a_short_final_chunk(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, _ = _envelope(provider, tmp_path, SIZE)
    _refused(provider, tmp_path, blob + os.urandom(100), IntegrityError, "chunk 3 failed authentication")


@pytest.mark.reliability("hostile input", "bit flip in each envelope chunk",
                         "IntegrityError naming the chunk; no output file")
def test_bit_flip_in_body(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, SIZE)
    for chunk in range(4):
        tampered = bytearray(blob)
        tampered[header_len + chunk * SEALED + 7] ^= 0x01
        _refused(provider, tmp_path, bytes(tampered), IntegrityError, f"chunk {chunk} failed authentication")


@pytest.mark.reliability("hostile input", "every single bit flip in the envelope header",
                         "an EnvelopeError; no output file")
def test_every_single_bit_flip_in_the_header_is_refused(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, 100)
    for offset in range(header_len):
        tampered = bytearray(blob)
        tampered[offset] ^= 0x04
        _refused(provider, tmp_path, bytes(tampered), EnvelopeError)


@pytest.mark.parametrize(
    ("field", "error", "match"),
    [
        ("magic", NotAnEnvelopeError, "magic"),
        ("version", UnsupportedEnvelopeError, "format version"),
        ("alg", UnsupportedEnvelopeError, "algorithm"),
        ("chunk", UnsupportedEnvelopeError, "chunk size"),
        ("chunk_valid", IntegrityError, "chunk 0 failed authentication: the header"),
        ("key_version", MalformedHeaderError, "does not match the wrapped data key"),
        ("wrapped", UnwrapError, "wrong key .* or the wrapped key in the header was altered"),
        ("salt", IntegrityError, "chunk 0 failed authentication: the header"),
        ("nonce_prefix", IntegrityError, "chunk 0 failed authentication"),
        ("context", ContextMismatchError, "context mismatch"),
    ],
)
@pytest.mark.reliability("hostile input", "envelope header field edited",
                         "an EnvelopeError naming the field's cause; no output file")
def test_header_field_edits_name_the_cause(
    provider: LocalKeyProvider, tmp_path: Path, field: str, error: type[Exception], match: str
) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, 3 * CHUNK)
    tampered = bytearray(blob)
    key_len = struct.unpack(">H", blob[15:17])[0]
    version_at = 17 + key_len
    wrapped_len = struct.unpack(">H", blob[version_at + 4 : version_at + 6])[0]
    wrapped_at = version_at + 6
    context_at = wrapped_at + wrapped_len + 2
    offsets = {"magic": 0, "version": 12, "alg": 13, "key_version": version_at + 3,
               "wrapped": wrapped_at + 20, "salt": header_len - 39, "nonce_prefix": header_len - 3,
               "context": context_at + 2}
    if field == "chunk":
        tampered[14] = 30
    elif field == "chunk_valid":
        tampered[14] = 17  # still allowed, but bound into the object key
    else:
        tampered[offsets[field]] ^= 0x01
    _refused(provider, tmp_path, bytes(tampered), error, match)


@pytest.mark.reliability("hostile input", "envelope header lengths claiming gigabytes",
                         "MalformedHeaderError before any large read")
def test_header_lengths_claiming_gigabytes(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, _ = _envelope(provider, tmp_path, 10)
    huge_header = blob[:8] + struct.pack(">I", 0xFFFFFFFF) + blob[12:]
    _refused(provider, tmp_path, huge_header, MalformedHeaderError, "claims 4294967295 bytes")
    huge_field = blob[:15] + struct.pack(">H", 0xFFFF) + blob[17:]
    _refused(provider, tmp_path, huge_field, MalformedHeaderError, "key reference claims 65535 bytes")


@pytest.mark.reliability("hostile input", "envelope decrypted under another context",
                         "ContextMismatchError; no output file")
def test_wrong_context(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, _ = _envelope(provider, tmp_path, 10)
    _refused(provider, tmp_path, blob, ContextMismatchError, "context mismatch",
             context={"run_id": "r2", "artifact": "model.pkl"})


@pytest.mark.reliability("hostile input", "envelope decrypted with another keyring or key",
                         "EnvelopeKeyError / UnwrapError / KeyMismatchError")
def test_wrong_key(provider: LocalKeyProvider, tmp_path: Path, master_key: bytes) -> None:
    _, blob, _ = _envelope(provider, tmp_path, 10)
    with LocalKeyProvider(tmp_path / "other-keyring", master_key) as other:
        _refused(other, tmp_path, blob, EnvelopeKeyError, "the key provider has no key 'pipeshield-data'")
        other.create_key(KEY)  # same name, different key material
        _refused(other, tmp_path, blob, UnwrapError, "wrong key")
    _refused(provider, tmp_path, blob, KeyMismatchError, "caller expects key 'other'", key_name="other")


@pytest.mark.reliability("hostile input", "envelope header pointing at another key",
                         "UnwrapError")
def test_header_pointing_at_another_key(provider: LocalKeyProvider, tmp_path: Path) -> None:
    provider.create_key("pipeshield-dat2")
    _, blob, _ = _envelope(provider, tmp_path, 10)
    _refused(provider, tmp_path, blob.replace(b"pipeshield-data", b"pipeshield-dat2", 1), UnwrapError, "wrong key")


@pytest.mark.reliability("hostile input", "envelope claiming an unknown key version",
                         "KeyVersionRefusedError naming the version")
def test_unknown_key_version(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, _ = _envelope(provider, tmp_path, 10)
    header = read_header(io.BytesIO(blob))
    forged = header.with_wrapped_key(header.wrapped_key.replace("vault:v1:", "vault:v7:"))
    tampered = forged.to_bytes() + blob[len(header.to_bytes()):]
    _refused(provider, tmp_path, tampered, KeyVersionRefusedError, "version 7, which the key provider refuses: version 7 is unknown")


@pytest.mark.reliability("hostile input", "envelope under a retired key version",
                         "KeyVersionRefusedError naming min_decryption_version")
def test_retired_key_version(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _, blob, _ = _envelope(provider, tmp_path, 10)
    provider.rotate(KEY)
    provider.set_min_decryption_version(KEY, 2)
    _refused(provider, tmp_path, blob, KeyVersionRefusedError, "version 1 is retired \\(min_decryption_version is 2\\)")


@pytest.mark.parametrize("size", [0, 1, CHUNK])
@pytest.mark.parametrize(
    ("name", "edit", "error"),
    [
        ("drop last byte", lambda b, h: b[:-1], IntegrityError),
        ("drop the tag", lambda b, h: b[:-16], EnvelopeError),
        ("drop every chunk", lambda b, h: b[:h], TruncatedEnvelopeError),
        ("flip the last byte", lambda b, h: b[:-1] + bytes([b[-1] ^ 1]), IntegrityError),
        ("append a byte", lambda b, h: b + b"\0", IntegrityError),
    ],
)
@pytest.mark.reliability("hostile input", "tampered tiny envelopes",
                         "an EnvelopeError; no output file")
def test_small_objects(provider: LocalKeyProvider, tmp_path: Path, size: int, name: str,
                       edit: Callable[[bytes, int], bytes], error: type[Exception]) -> None:
    _, blob, header_len = _envelope(provider, tmp_path, size)
    _refused(provider, tmp_path, edit(blob, header_len), error)


@pytest.mark.reliability("hostile input", "empty, one-byte and plaintext inputs to decrypt",
                         "NotAnEnvelopeError / MalformedHeaderError")
def test_empty_and_one_byte_inputs_are_not_envelopes(provider: LocalKeyProvider, tmp_path: Path) -> None:
    _refused(provider, tmp_path, b"", NotAnEnvelopeError, "input is empty")
    _refused(provider, tmp_path, b"P", MalformedHeaderError, "header truncated")
    _refused(provider, tmp_path, b"x", NotAnEnvelopeError, "magic")
    _refused(provider, tmp_path, b"plain text, never encrypted\n" * 10, NotAnEnvelopeError, "magic")


@pytest.mark.reliability("hostile input", "stream decrypt of an envelope tampered in chunk 1",
                         "only chunk 0 reaches the stream")
def test_stream_decrypt_releases_only_verified_chunks(provider: LocalKeyProvider, tmp_path: Path) -> None:
    plain, blob, header_len = _envelope(provider, tmp_path, SIZE)
    tampered = bytearray(blob)
    tampered[header_len + SEALED + 3] ^= 0x80  # chunk 1
    out = io.BytesIO()
    with pytest.raises(IntegrityError, match="chunk 1 failed authentication"):
        decrypt_stream(io.BytesIO(bytes(tampered)), out, provider, context=CONTEXT)
    assert out.getvalue() == plain[:CHUNK]  # chunk 0 verified; nothing of chunk 1 or later


@pytest.mark.reliability("hostile input", "failed decrypt onto an existing destination",
                         "the destination keeps its previous bytes")
def test_existing_destination_is_left_untouched_on_failure(provider: LocalKeyProvider, tmp_path: Path,
                                                           reliability) -> None:
    _, blob, _ = _envelope(provider, tmp_path, SIZE)
    (tmp_path / "tampered").write_bytes(blob[:-1])
    (tmp_path / "dest").write_bytes(b"previous content")
    with pytest.raises(IntegrityError):
        decrypt_file(tmp_path / "tampered", tmp_path / "dest", provider, context=CONTEXT)
    kept = (tmp_path / "dest").read_bytes()
    reliability(bytes_lost=0 if kept == b"previous content" else len(b"previous content"))
    assert kept == b"previous content"
