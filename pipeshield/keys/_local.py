"""``LocalKeyProvider``: the embedded default key provider, with Vault Transit semantics.

Layout of a keyring directory (0700; every file 0600)::

    keyring.json        format marker and a check value that tells a wrong master key apart
    keys/<name>.json    one sealed file per key: AES-256-GCM under a key derived from the master key,
                        with the key name as associated data (a file renamed to another key won't open)
    .lock               advisory lock taken by writers (create, rotate, config)

Writers take the lock, write a temporary file, fsync and ``os.replace`` it into place, so readers
in other processes always see a whole file and a failed write never destroys the previous one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from filelock import FileLock

from pipeshield.errors import (
    ConfigError,
    InvalidWrappedKeyError,
    KeyExistsError,
    KeyNotFoundError,
    KeyringCorruptedError,
    KeyVersionError,
    UnsupportedOperationError,
    WrongMasterKeyError,
)
from pipeshield.keys import _versioned
from pipeshield.keys._base import DataKey, KeyInfo, KeyProvider, KeyType, Signature

_FORMAT = "pipeshield-keyring-v1"
_KEY_NAME = re.compile(r"^\w(?:[\w.-]*\w)?$")  # Vault's name grammar: also rules out path traversal
_NONCE = 12
_TAG = 16


def load_master_key(master_key: str | None, master_key_file: Path) -> bytes:
    """The 32-byte master key from its base64 text, or from ``master_key_file`` (created on first use)."""
    if master_key:
        return _decode_master_key(master_key, "PIPESHIELD_MASTER_KEY")
    if master_key_file.exists():
        return _decode_master_key(master_key_file.read_text(encoding="ascii").strip(), str(master_key_file))
    master_key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    generated = secrets.token_bytes(32)
    fd = os.open(master_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(generated).decode("ascii") + "\n")
    return generated


def _decode_master_key(text: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(source, "master key is not valid base64") from None
    if len(raw) != 32:
        raise ConfigError(source, f"master key must be 32 bytes, got {len(raw)}")
    return raw


class LocalKeyProvider(KeyProvider):
    """Keys kept in a local directory, encrypted at rest under a master key. Safe across processes."""

    name = "local"

    def __init__(self, keyring_dir: str | os.PathLike[str], master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ConfigError("master_key", "must be 32 bytes")
        self._dir = Path(keyring_dir)
        self._keys_dir = self._dir / "keys"
        self._seal_key = HKDF(hashes.SHA256(), 32, None, b"pipeshield keyring seal v1").derive(master_key)
        self._check = HKDF(hashes.SHA256(), 32, None, b"pipeshield keyring check v1").derive(master_key)
        self._lock = FileLock(str(self._dir / ".lock"), mode=0o600)
        self._open_keyring()

    # --- keyring files ----------------------------------------------------
    def _open_keyring(self) -> None:
        self._keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        marker = self._dir / "keyring.json"
        with self._lock:
            if not marker.exists():
                doc = {"format": _FORMAT, "check": base64.b64encode(self._check).decode("ascii")}
                _atomic_write(marker, json.dumps(doc).encode())
                return
        try:
            doc = json.loads(marker.read_bytes())
            expected = base64.b64decode(doc["check"], validate=True)
            if doc.get("format") != _FORMAT:
                raise ValueError("unknown format")
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise KeyringCorruptedError(f"keyring marker {str(marker)!r} is unreadable: {exc}") from None
        if not hmac.compare_digest(expected, self._check):
            raise WrongMasterKeyError(
                f"the master key does not open the keyring at {str(self._dir)!r} "
                "(check PIPESHIELD_MASTER_KEY or PIPESHIELD_MASTER_KEY_FILE)"
            )

    def _key_path(self, name: str) -> Path:
        if not isinstance(name, str) or not _KEY_NAME.match(name):
            raise KeyNotFoundError(name)
        return self._keys_dir / f"{name}.json"

    def _load(self, name: str) -> dict[str, Any]:
        path = self._key_path(name)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFoundError(name) from None
        try:
            sealed = base64.b64decode(json.loads(blob)["sealed"], validate=True)
            plain = AESGCM(self._seal_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], name.encode())
            return json.loads(plain)
        except (ValueError, KeyError, TypeError, binascii.Error, InvalidTag):
            raise KeyringCorruptedError(
                f"key file {str(path)!r} is corrupted or was tampered with; it was left untouched"
            ) from None

    def _store(self, name: str, material: dict[str, Any]) -> None:
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + AESGCM(self._seal_key).encrypt(nonce, json.dumps(material).encode(), name.encode())
        doc = {"format": _FORMAT, "name": name, "sealed": base64.b64encode(sealed).decode("ascii")}
        _atomic_write(self._key_path(name), json.dumps(doc).encode())

    @contextlib.contextmanager
    def _update(self, name: str) -> Iterator[dict[str, Any]]:
        with self._lock:
            material = self._load(name)
            yield material
            self._store(name, material)

    # --- lifecycle ----------------------------------------------------------
    def create_key(self, name: str, key_type: KeyType = KeyType.AES256_GCM96, *, derived: bool = False) -> KeyInfo:
        key_type = KeyType(key_type)
        if derived and not key_type.can_encrypt:
            raise UnsupportedOperationError(f"key derivation not supported for keys of type {key_type.value}")
        path = self._key_path(name)
        with self._lock:
            if path.exists():
                info = _info(name, self._load(name))
                if info.type is not key_type or info.derived != derived:
                    raise KeyExistsError(f"key {name!r} already exists with type {info.type.value}")
                return info
            material = {
                "type": key_type.value,
                "derived": derived,
                "latest_version": 1,
                "min_decryption_version": 1,
                "versions": {"1": _new_version(key_type)},
            }
            self._store(name, material)
        return _info(name, material)

    def key_info(self, name: str) -> KeyInfo:
        return _info(name, self._load(name))

    def list_keys(self) -> list[str]:
        return sorted(p.stem for p in self._keys_dir.glob("*.json") if _KEY_NAME.match(p.stem))

    def rotate(self, name: str) -> KeyInfo:
        with self._update(name) as material:
            version = material["latest_version"] + 1
            material["versions"][str(version)] = _new_version(KeyType(material["type"]))
            material["latest_version"] = version
        return _info(name, material)

    def set_min_decryption_version(self, name: str, version: int) -> KeyInfo:
        with self._update(name) as material:
            if version < 0:
                raise KeyVersionError("min decryption version cannot be negative")
            version = max(version, 1)  # as Vault: 0 means 1
            if version > material["latest_version"]:
                raise KeyVersionError(
                    f"cannot set min decryption version of {version}, latest key version is {material['latest_version']}"
                )
            material["min_decryption_version"] = version
        return _info(name, material)

    # --- symmetric operations --------------------------------------------------
    def generate_data_key(self, name: str, *, context: bytes | None = None) -> DataKey:
        plaintext = secrets.token_bytes(32)
        wrapped = self.encrypt(name, plaintext, context=context)
        version, _ = _versioned.decode(wrapped)
        return DataKey(key_name=name, key_version=version, wrapped=wrapped, plaintext=plaintext)

    def encrypt(self, name: str, plaintext: bytes, *, context: bytes | None = None) -> str:
        material = self._load(name)
        version = material["latest_version"]
        key = self._symmetric_key(name, material, version, context)
        nonce = secrets.token_bytes(_NONCE)
        return _versioned.encode(version, nonce + AESGCM(key).encrypt(nonce, plaintext, None))

    def unwrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> bytes:
        material = self._load(name)
        version, raw = _versioned.decode(wrapped, "ciphertext")
        self._check_version(name, material, version)
        key = self._symmetric_key(name, material, version, context)
        if len(raw) < _NONCE + _TAG:
            raise InvalidWrappedKeyError("invalid ciphertext length: truncated")
        try:
            return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], None)
        except InvalidTag:
            raise InvalidWrappedKeyError(
                f"message authentication failed for key {name!r} v{version}: "
                "tampered or truncated ciphertext, wrong key or wrong context"
            ) from None

    def rewrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> str:
        return self.encrypt(name, self.unwrap(name, wrapped, context=context), context=context)

    def hmac(self, name: str, data: bytes) -> str:
        material = self._load(name)
        version = material["latest_version"]
        hmac_key = base64.b64decode(material["versions"][str(version)]["hmac_key"])
        return _versioned.encode(version, hmac.new(hmac_key, data, hashlib.sha256).digest())

    # --- signing ------------------------------------------------------------
    def sign_digest(self, name: str, digest: bytes) -> Signature:
        material = self._load(name)
        _require(name, material, signing=True)
        if len(digest) != 32:
            raise InvalidWrappedKeyError("a SHA-256 digest is 32 bytes")
        version = material["latest_version"]
        der = self._private_key(material, version).sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return Signature(key_name=name, key_version=version, der=der, encoded=_versioned.encode(version, der))

    def verify_digest(self, name: str, digest: bytes, signature: str) -> bool:
        material = self._load(name)
        _require(name, material, signing=True)
        version, der = _versioned.decode(signature, "signature")
        self._check_version(name, material, version)
        try:
            decode_dss_signature(der)
        except ValueError:
            raise InvalidWrappedKeyError("supplied signature is invalid: not DER-encoded ECDSA") from None
        public = self._private_key(material, version).public_key()
        try:
            public.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            return False
        return True

    def public_key_pem(self, name: str, version: int | None = None) -> str:
        material = self._load(name)
        _require(name, material, signing=True)
        version = material["latest_version"] if version is None else version
        if str(version) not in material["versions"] or version < material["min_decryption_version"]:
            raise KeyVersionError(f"key {name!r} has no version {version} (unknown or below min_decryption_version)")
        public = self._private_key(material, version).public_key()
        return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    # --- helpers --------------------------------------------------------------
    @staticmethod
    def _check_version(name: str, material: dict[str, Any], version: int) -> None:
        if version > material["latest_version"]:
            raise KeyVersionError(f"key {name!r} has no version {version} (version is too new)")
        if version < material["min_decryption_version"]:
            raise KeyVersionError(
                f"key {name!r} version {version} is below min_decryption_version "
                f"{material['min_decryption_version']}: it is retired and may not be used"
            )

    @staticmethod
    def _symmetric_key(name: str, material: dict[str, Any], version: int, context: bytes | None) -> bytes:
        _require(name, material, signing=False)
        key = base64.b64decode(material["versions"][str(version)]["key"])
        if not material["derived"]:
            return key  # as in Vault, a context is ignored by non-derived keys
        if not context:
            raise InvalidWrappedKeyError(f"key {name!r} is derived: a context is required")
        return HKDF(hashes.SHA256(), 32, None, context).derive(key)

    @staticmethod
    def _private_key(material: dict[str, Any], version: int) -> ec.EllipticCurvePrivateKey:
        der = base64.b64decode(material["versions"][str(version)]["key"])
        key = serialization.load_der_private_key(der, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def _require(name: str, material: dict[str, Any], *, signing: bool) -> None:
    key_type = KeyType(material["type"])
    if signing and not key_type.can_sign:
        raise UnsupportedOperationError(f"key {name!r} of type {key_type.value} does not support signing")
    if not signing and not key_type.can_encrypt:
        raise UnsupportedOperationError(f"key {name!r} of type {key_type.value} does not support encryption")


def _new_version(key_type: KeyType) -> dict[str, Any]:
    if key_type is KeyType.ECDSA_P256:
        private = ec.generate_private_key(ec.SECP256R1())
        raw = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        raw = secrets.token_bytes(32)
    return {
        "key": base64.b64encode(raw).decode("ascii"),
        "hmac_key": base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
        "created": int(time.time()),
    }


def _info(name: str, material: dict[str, Any]) -> KeyInfo:
    return KeyInfo(
        name=name,
        type=KeyType(material["type"]),
        latest_version=material["latest_version"],
        min_decryption_version=material["min_decryption_version"],
        derived=material["derived"],
        # as Vault Transit: versions below the minimum decryption version are archived, not listed
        versions=tuple(sorted(int(v) for v in material["versions"] if int(v) >= material["min_decryption_version"])),
    )


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
