"""Regenerate ``envelope-v1.json``: fixed data keys, salts and nonce prefixes, so any implementation can check.

    python tests/vectors/make_envelope_vectors.py

Plaintext of a vector is ``bytes((i * 7 + 3) % 256 for i in range(plaintext_size))``.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from pipeshield.envelope._header import Header, canonical_context, log2_chunk_size
from pipeshield.envelope._stream import Digest, seal

OUT = Path(__file__).with_name("envelope-v1.json")
FULL_HEX_LIMIT = 4096  # vectors with envelopes up to this size carry the whole envelope in hex

CASES: list[dict[str, Any]] = [
    {"name": "empty", "plaintext_size": 0, "chunk_size": 1 << 16, "context": ""},
    {"name": "one byte", "plaintext_size": 1, "chunk_size": 1 << 16, "context": "run=1"},
    {"name": "short text context", "plaintext_size": 1000, "chunk_size": 1 << 20,
     "context": {"artifact_path": "model/model.pkl", "mlflow_run": "0f3c"}},
    {"name": "exactly one chunk", "plaintext_size": 1 << 16, "chunk_size": 1 << 16, "context": "c"},
    {"name": "three chunks plus five bytes", "plaintext_size": 3 * (1 << 16) + 5, "chunk_size": 1 << 16,
     "context": "c"},
    {"name": "two full chunks at 128 KiB", "plaintext_size": 2 * (1 << 17), "chunk_size": 1 << 17, "context": "c"},
]


def plaintext(size: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(size))


def build(case: dict[str, Any], index: int) -> dict[str, Any]:
    data_key = hashlib.sha256(f"pipeshield test vector data key {index}".encode()).digest()
    context = canonical_context(case["context"])
    header = Header(
        key_name="pipeshield-data",
        key_version=3,
        wrapped_key="vault:v3:" + hashlib.sha256(f"wrapped {index}".encode()).hexdigest(),
        context=context,
        salt=hashlib.sha256(f"salt {index}".encode()).digest(),
        nonce_prefix=hashlib.sha256(f"nonce prefix {index}".encode()).digest()[:7],
        log2_chunk=log2_chunk_size(case["chunk_size"]),
    )
    object_key = header.object_key(data_key)
    out = io.BytesIO()
    seal(header, object_key, io.BytesIO(plaintext(case["plaintext_size"])), out, Digest(), Digest())
    envelope = out.getvalue()
    header_len = len(header.to_bytes())
    chunk_count = max(1, -(-case["plaintext_size"] // case["chunk_size"]))
    vector: dict[str, Any] = {
        "name": case["name"],
        "plaintext_size": case["plaintext_size"],
        "chunk_size": case["chunk_size"],
        "context_hex": context.hex(),
        "data_key_hex": data_key.hex(),
        "key_name": header.key_name,
        "key_version": header.key_version,
        "wrapped_key": header.wrapped_key,
        "salt_hex": header.salt.hex(),
        "nonce_prefix_hex": header.nonce_prefix.hex(),
        "header_hex": header.to_bytes().hex(),
        "bound_header_sha256_hex": header.bound_digest().hex(),
        "object_key_hex": object_key.hex(),
        "chunk_count": chunk_count,
        "first_nonce_hex": header.nonce(0, chunk_count == 1).hex(),
        "last_nonce_hex": header.nonce(chunk_count - 1, True).hex(),
        "last_tag_hex": envelope[-16:].hex(),
        "envelope_size": len(envelope),
        "envelope_sha256_hex": hashlib.sha256(envelope).hexdigest(),
        "plaintext_sha256_hex": hashlib.sha256(plaintext(case["plaintext_size"])).hexdigest(),
    }
    if len(envelope) <= FULL_HEX_LIMIT:
        vector["envelope_hex"] = envelope.hex()
    assert header_len + case["plaintext_size"] + 16 * chunk_count == len(envelope)
    return vector


def vectors() -> dict[str, Any]:
    return {
        "format": "pipeshield envelope v1",
        "spec": "docs/envelope-format.md",
        "plaintext": "bytes((i * 7 + 3) % 256 for i in range(plaintext_size))",
        "vectors": [build(case, index) for index, case in enumerate(CASES)],
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=2) + "\n")
    print(f"wrote {OUT}")
