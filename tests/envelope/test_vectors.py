"""The shipped test vectors: pipeshield re-derives them, and an independent decoder written from
``docs/envelope-format.md`` alone (only ``cryptography`` primitives) opens them."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeshield.envelope import read_header
from pipeshield.envelope._stream import Digest, open_body, seal
from tests.vectors.make_envelope_vectors import plaintext, vectors

FILE = Path(__file__).resolve().parents[1] / "vectors" / "envelope-v1.json"
SHIPPED = json.loads(FILE.read_text())


def test_shipped_vectors_are_what_the_code_derives() -> None:
    assert vectors() == SHIPPED


def _reference_open(envelope: bytes, data_key: bytes) -> tuple[bytes, bytes]:
    """Decode per the spec: returns (object key, plaintext). Independent of pipeshield's code."""
    magic, header_len, version, alg, log2_chunk = struct.unpack(">8sIBBB", envelope[:15])
    assert (magic, version, alg) == (b"PSHLDENC", 1, 1)
    pos = 15
    (key_len,) = struct.unpack(">H", envelope[pos : pos + 2])
    key_ref = envelope[pos + 2 : pos + 2 + key_len]
    pos += 2 + key_len + 4  # key version
    (wrapped_len,) = struct.unpack(">H", envelope[pos : pos + 2])
    pos += 2 + wrapped_len
    (context_len,) = struct.unpack(">H", envelope[pos : pos + 2])
    context = envelope[pos + 2 : pos + 2 + context_len]
    pos += 2 + context_len
    salt, prefix = envelope[pos : pos + 32], envelope[pos + 32 : pos + 39]
    assert pos + 39 == header_len
    bound = (magic + bytes((version, alg, log2_chunk)) + struct.pack(">H", key_len) + key_ref
             + struct.pack(">H", context_len) + context)
    info = b"pipeshield-envelope-v1" + hashlib.sha256(bound).digest()
    object_key = HKDF(hashes.SHA256(), 32, salt, info).derive(data_key)
    aead, sealed_size = AESGCM(object_key), (1 << log2_chunk) + 16
    body = envelope[header_len:]
    pieces = [body[i : i + sealed_size] for i in range(0, len(body), sealed_size)]
    out = b"".join(
        aead.decrypt(prefix + struct.pack(">IB", i, int(i == len(pieces) - 1)), piece, None)
        for i, piece in enumerate(pieces)
    )
    return object_key, out


def _envelope_of(vector: dict[str, Any]) -> bytes:
    if "envelope_hex" in vector:
        return bytes.fromhex(vector["envelope_hex"])
    header = read_header(io.BytesIO(bytes.fromhex(vector["header_hex"])))
    out = io.BytesIO()
    key = bytes.fromhex(vector["object_key_hex"])
    seal(header, key, io.BytesIO(plaintext(vector["plaintext_size"])), out, Digest(), Digest())
    return out.getvalue()


@pytest.mark.parametrize("vector", SHIPPED["vectors"], ids=lambda v: v["name"])
def test_independent_decoder_opens_each_vector(vector: dict[str, Any]) -> None:
    envelope = _envelope_of(vector)
    assert hashlib.sha256(envelope).hexdigest() == vector["envelope_sha256_hex"]
    assert envelope.startswith(bytes.fromhex(vector["header_hex"]))
    assert envelope[-16:].hex() == vector["last_tag_hex"]
    object_key, plain = _reference_open(envelope, bytes.fromhex(vector["data_key_hex"]))
    assert object_key.hex() == vector["object_key_hex"]
    assert plain == plaintext(vector["plaintext_size"])
    assert hashlib.sha256(plain).hexdigest() == vector["plaintext_sha256_hex"]


@pytest.mark.parametrize("vector", SHIPPED["vectors"], ids=lambda v: v["name"])
def test_pipeshield_opens_each_vector(vector: dict[str, Any]) -> None:
    stream = io.BytesIO(_envelope_of(vector))
    header = read_header(stream)
    assert (header.key_name, header.key_version, header.wrapped_key) == (
        vector["key_name"], vector["key_version"], vector["wrapped_key"])
    assert header.context.hex() == vector["context_hex"]
    assert header.object_key(bytes.fromhex(vector["data_key_hex"])).hex() == vector["object_key_hex"]
    out = io.BytesIO()
    open_body(header, bytes.fromhex(vector["object_key_hex"]), stream, out, Digest(), Digest())
    assert out.getvalue() == plaintext(vector["plaintext_size"])
