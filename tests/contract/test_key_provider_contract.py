"""Behaviour every KeyProvider must share (local keyring and Vault Transit alike)."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pipeshield.errors import (
    InvalidWrappedKeyError,
    KeyNotFoundError,
    KeyVersionError,
    UnsupportedOperationError,
)
from pipeshield.keys import KeyProvider, KeyType


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_data_key_round_trip(key_provider: KeyProvider) -> None:
    name = _name("wrap")
    info = key_provider.create_key(name)
    assert info.type is KeyType.AES256_GCM96 and info.latest_version == 1
    data_key = key_provider.generate_data_key(name)
    assert len(data_key.plaintext) == 32
    assert data_key.wrapped.startswith("vault:v1:") and data_key.key_version == 1
    assert len(data_key.wrapped) == 89  # vault:v1: + b64(12 nonce + 32 key + 16 tag), as Vault
    assert key_provider.unwrap(name, data_key.wrapped) == data_key.plaintext
    assert data_key.plaintext.hex() not in repr(data_key)


def test_create_is_idempotent_and_listed(key_provider: KeyProvider) -> None:
    name = _name("idem")
    key_provider.create_key(name)
    key_provider.create_key(name)
    assert key_provider.key_info(name).latest_version == 1
    assert name in key_provider.list_keys()


def test_unknown_key_is_reported(key_provider: KeyProvider) -> None:
    with pytest.raises(KeyNotFoundError):
        key_provider.generate_data_key(_name("missing"))
    with pytest.raises(KeyNotFoundError):
        key_provider.key_info(_name("missing"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-prefix", "bad-base64", "empty-body"])
def test_tampered_or_truncated_wrapped_key_is_refused(key_provider: KeyProvider, damage: str) -> None:
    name = _name("tamper")
    key_provider.create_key(name)
    wrapped = key_provider.generate_data_key(name).wrapped
    prefix, body = wrapped[:9], base64.b64decode(wrapped[9:])
    if damage == "flip":
        bad = prefix + base64.b64encode(body[:20] + bytes([body[20] ^ 1]) + body[21:]).decode()
    elif damage == "truncate":
        bad = prefix + base64.b64encode(body[:-5]).decode()
    elif damage == "no-prefix":
        bad = wrapped[9:]
    elif damage == "bad-base64":
        bad = prefix + "!!!not-base64"
    else:
        bad = prefix
    with pytest.raises(InvalidWrappedKeyError):
        key_provider.unwrap(name, bad)


def test_wrong_key_cannot_unwrap(key_provider: KeyProvider) -> None:
    first, second = _name("a"), _name("b")
    key_provider.create_key(first)
    key_provider.create_key(second)
    wrapped = key_provider.generate_data_key(first).wrapped
    with pytest.raises(InvalidWrappedKeyError):
        key_provider.unwrap(second, wrapped)


def test_rotation_rewrap_and_min_decryption_version(key_provider: KeyProvider) -> None:
    name = _name("rot")
    key_provider.create_key(name)
    old = key_provider.generate_data_key(name)
    info = key_provider.rotate(name)
    assert info.latest_version == 2
    assert key_provider.unwrap(name, old.wrapped) == old.plaintext  # v1 still opens
    rewrapped = key_provider.rewrap(name, old.wrapped)
    assert rewrapped.startswith("vault:v2:")
    assert key_provider.generate_data_key(name).key_version == 2
    key_provider.set_min_decryption_version(name, 2)
    assert key_provider.key_info(name).min_decryption_version == 2
    with pytest.raises(KeyVersionError):
        key_provider.unwrap(name, old.wrapped)
    assert key_provider.unwrap(name, rewrapped) == old.plaintext


def test_version_too_new_is_refused(key_provider: KeyProvider) -> None:
    name = _name("new")
    key_provider.create_key(name)
    wrapped = key_provider.generate_data_key(name).wrapped
    with pytest.raises(KeyVersionError):
        key_provider.unwrap(name, "vault:v7:" + wrapped[9:])


def test_derived_key_binds_context(key_provider: KeyProvider) -> None:
    name = _name("derived")
    key_provider.create_key(name, derived=True)
    ciphertext = key_provider.encrypt(name, b"4111-1111", context=b"customers/card")
    assert key_provider.decrypt(name, ciphertext, context=b"customers/card") == b"4111-1111"
    with pytest.raises(InvalidWrappedKeyError):
        key_provider.decrypt(name, ciphertext, context=b"customers/other")


def test_hmac_is_deterministic_and_keyed(key_provider: KeyProvider) -> None:
    first, second = _name("h1"), _name("h2")
    key_provider.create_key(first)
    key_provider.create_key(second)
    token = key_provider.hmac(first, b"alice@example.com")
    assert token == key_provider.hmac(first, b"alice@example.com")
    assert token.startswith("vault:v1:")
    assert token != key_provider.hmac(first, b"bob@example.com")
    assert token != key_provider.hmac(second, b"alice@example.com")


def test_sign_verify_and_public_key(key_provider: KeyProvider) -> None:
    name = _name("sign")
    key_provider.create_key(name, KeyType.ECDSA_P256)
    digest = hashlib.sha256(b"manifest").digest()
    signature = key_provider.sign_digest(name, digest)
    assert signature.encoded.startswith("vault:v1:") and signature.key_version == 1
    assert key_provider.verify_digest(name, digest, signature.encoded)
    assert not key_provider.verify_digest(name, hashlib.sha256(b"other").digest(), signature.encoded)
    # the PEM public key verifies the DER signature outside the provider (what model_signing does)
    public = serialization.load_pem_public_key(key_provider.public_key_pem(name).encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature.der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_signatures_survive_rotation_until_retired(key_provider: KeyProvider) -> None:
    name = _name("signrot")
    key_provider.create_key(name, KeyType.ECDSA_P256)
    digest = hashlib.sha256(b"v1 model").digest()
    old = key_provider.sign_digest(name, digest)
    key_provider.rotate(name)
    assert key_provider.sign_digest(name, digest).key_version == 2
    assert key_provider.verify_digest(name, digest, old.encoded)
    assert key_provider.public_key_pem(name, 1) != key_provider.public_key_pem(name, 2)
    key_provider.set_min_decryption_version(name, 2)
    with pytest.raises(KeyVersionError):
        key_provider.verify_digest(name, digest, old.encoded)


def test_malformed_signature_is_an_error(key_provider: KeyProvider) -> None:
    name = _name("badsig")
    key_provider.create_key(name, KeyType.ECDSA_P256)
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(InvalidWrappedKeyError):
        key_provider.verify_digest(name, digest, "vault:v1:" + base64.b64encode(b"not der").decode())


def test_key_types_refuse_the_wrong_operation(key_provider: KeyProvider) -> None:
    aes, ecdsa = _name("aes"), _name("ec")
    key_provider.create_key(aes)
    key_provider.create_key(ecdsa, KeyType.ECDSA_P256)
    with pytest.raises(UnsupportedOperationError):
        key_provider.sign_digest(aes, hashlib.sha256(b"x").digest())
    with pytest.raises(UnsupportedOperationError):
        key_provider.generate_data_key(ecdsa)


def test_retired_versions_are_hidden_and_limits_enforced(key_provider: KeyProvider) -> None:
    name = _name("retire")
    key_provider.create_key(name, KeyType.ECDSA_P256)
    key_provider.rotate(name)
    key_provider.rotate(name)
    assert key_provider.key_info(name).versions == (1, 2, 3)
    info = key_provider.set_min_decryption_version(name, 2)
    assert info.min_decryption_version == 2 and info.versions == (2, 3)  # as Vault: v1 is archived
    with pytest.raises(KeyVersionError):
        key_provider.public_key_pem(name, 1)
    with pytest.raises(KeyVersionError):
        key_provider.set_min_decryption_version(name, 4)  # above the latest version
    with pytest.raises(KeyVersionError):
        key_provider.set_min_decryption_version(name, -1)
    assert key_provider.set_min_decryption_version(name, 1).versions == (1, 2, 3)  # lowering restores v1


def test_encrypt_never_creates_a_missing_key(key_provider: KeyProvider) -> None:
    name = _name("absent")
    with pytest.raises(KeyNotFoundError):
        key_provider.encrypt(name, b"secret")
    assert name not in key_provider.list_keys()
