"""The OpenSSF model-signing (OMS) format, through ``model-signing`` 1.1.x.

model-signing has no public hook for a custom signer, so this module is the one place that uses its
private API (pinned ``model-signing~=1.1`` and covered by ``tests/test_signing_oms_contract.py``):

- ``model_signing._signing.signing``: ``Payload`` (in-toto statement from a manifest),
  ``dsse_payload_to_manifest`` (subject/root-digest consistency checks), ``_PREDICATE_TYPE``,
  ``_IN_TOTO_JSON_PAYLOAD_TYPE``, ``_IN_TOTO_STATEMENT_TYPE``;
- ``model_signing._signing.sign_sigstore_pb``: ``Signature`` (bundle read/write), ``pae``, ``_BUNDLE_MEDIA_TYPE``;
- ``model_signing.manifest._FileSerialization`` and ``model_signing._hashing.hashing.Digest``.

The bundle has the shape of ``model_signing._signing.sign_ec_key.Signer``'s (DSSE envelope, public-key
hint = SHA-256 of the PEM, no transparency log), so the stock ``use_elliptic_key_verifier`` accepts it.
The private key stays in the ``KeyProvider``: only the SHA-256 of the DSSE PAE is sent to be signed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format
from model_signing import manifest as oms_manifest
from model_signing._hashing.hashing import Digest
from model_signing._signing import sign_sigstore_pb
from model_signing._signing import signing as oms_signing
from sigstore_models import intoto as intoto_pb
from sigstore_models.bundle import v1 as bundle_pb
from sigstore_models.common import v1 as common_pb

from pipeshield.errors import SignatureFormatError
from pipeshield.keys import KeyProvider

PREDICATE_TYPE: str = oms_signing._PREDICATE_TYPE
PAYLOAD_TYPE: str = oms_signing._IN_TOTO_JSON_PAYLOAD_TYPE
STATEMENT_TYPE: str = oms_signing._IN_TOTO_STATEMENT_TYPE
BUNDLE_MEDIA_TYPE: str = sign_sigstore_pb._BUNDLE_MEDIA_TYPE
HASH_TYPE = "sha256"


def statement(model_name: str, digests: dict[str, bytes], *, ignore_paths: list[str],
              allow_symlinks: bool) -> bytes:
    """The in-toto statement (JSON bytes, as the stock signer serializes it) for per-file SHA-256 digests."""
    serialization = oms_manifest._FileSerialization(HASH_TYPE, allow_symlinks, [Path(p) for p in ignore_paths])
    items = [oms_manifest.FileManifestItem(path=PurePosixPath(name), digest=Digest(HASH_TYPE, digest))
             for name, digest in digests.items()]
    payload = oms_signing.Payload(oms_manifest.Manifest(model_name, items, serialization))
    return json_format.MessageToJson(payload.statement.pb).encode("utf-8")


def pae_digest(raw_statement: bytes) -> bytes:
    """SHA-256 of the DSSE pre-authentication encoding: what the ECDSA P-256 signature covers."""
    return hashlib.sha256(sign_sigstore_pb.pae(raw_statement)).digest()


def sign_statement(raw_statement: bytes, provider: KeyProvider, key_name: str) -> tuple[str, int, str]:
    """Sign with the provider's latest key version: (bundle JSON, key version, public key PEM)."""
    signature = provider.sign_digest(key_name, pae_digest(raw_statement))
    pem = provider.public_key_pem(key_name, signature.key_version)
    envelope = intoto_pb.Envelope(
        payload=base64.b64encode(raw_statement),
        payload_type=PAYLOAD_TYPE,
        signatures=[intoto_pb.Signature(sig=base64.b64encode(signature.der), keyid="")],
    )
    material = bundle_pb.VerificationMaterial(
        public_key=common_pb.PublicKeyIdentifier(hint=pem_hint(pem)), tlog_entries=[])
    bundle = bundle_pb.Bundle(media_type=BUNDLE_MEDIA_TYPE, verification_material=material, dsse_envelope=envelope)
    return sign_sigstore_pb.Signature(bundle).bundle.to_json(), signature.key_version, pem


def pem_hint(pem: str) -> str:
    """The public-key hint model-signing puts in a bundle: hex SHA-256 of the PEM as ``cryptography`` writes
    it (the stock verifier re-serializes the key, so a provider's own PEM layout must not matter)."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    canonical = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


@dataclasses.dataclass(frozen=True)
class Envelope:
    """The parts of a bundle a verifier needs (nothing here is trusted yet)."""

    hint: str | None
    payload: bytes
    signature_der: bytes

    @property
    def signed_bytes(self) -> bytes:
        return sign_sigstore_pb.pae(self.payload)


def read_bundle(path: Path) -> Envelope:
    """Parse a signature bundle (no verification); raises ``SignatureFormatError``."""
    try:
        bundle = sign_sigstore_pb.Signature.read(path).bundle
        if bundle.media_type != BUNDLE_MEDIA_TYPE:
            raise ValueError(f"media type {bundle.media_type!r}, expected {BUNDLE_MEDIA_TYPE!r}")
        envelope = bundle.dsse_envelope
        if envelope is None or len(envelope.signatures) != 1:
            raise ValueError("expected a DSSE envelope with exactly one signature")
        if envelope.payload_type != PAYLOAD_TYPE:
            raise ValueError(f"payload type {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}")
        public_key = bundle.verification_material.public_key
        return Envelope(hint=public_key.hint if public_key else None, payload=bytes(envelope.payload),
                        signature_der=bytes(envelope.signatures[0].sig))
    except SignatureFormatError:
        raise
    except Exception as exc:  # the bundle parser raises pydantic, JSON, key and value errors
        raise SignatureFormatError(f"signature bundle {path.name!r} is malformed: {exc}", path.name) from None


@dataclasses.dataclass(frozen=True)
class SignedManifest:
    """A verified statement decoded: subject name, root digest, serialization and per-file digests."""

    model_name: str
    root_digest: str
    serialization: dict[str, Any]
    digests: dict[str, bytes]


def decode_statement(payload: bytes) -> SignedManifest:
    """Decode a verified in-toto statement; only OMS v1.0 file-mode SHA-256 manifests are accepted."""
    try:
        doc = json.loads(payload)
        if doc.get("_type") != STATEMENT_TYPE:
            raise ValueError(f"statement type {doc.get('_type')!r}, expected {STATEMENT_TYPE!r}")
        if doc.get("predicateType") != PREDICATE_TYPE:
            raise ValueError(f"predicate type {doc.get('predicateType')!r}, expected {PREDICATE_TYPE!r}")
        manifest = oms_signing.dsse_payload_to_manifest(doc)  # one subject, root digest consistent
        serialization = dict(manifest.serialization_type)
        if serialization.get("method") != "files" or serialization.get("hash_type") != HASH_TYPE:
            raise ValueError(f"unsupported serialization {serialization!r} (pipeshield signs files with sha256)")
        digests = {rd.identifier: rd.digest.digest_value for rd in manifest.resource_descriptors()}
        return SignedManifest(manifest.model_name, doc["subject"][0]["digest"]["sha256"], serialization, digests)
    except Exception as exc:
        raise SignatureFormatError(f"signed statement is malformed: {exc}") from None
