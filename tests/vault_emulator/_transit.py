"""Transit secrets engine with real cryptography and Vault's byte formats (spec §3.8, §4)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac as hmac_lib
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.vault_emulator import _fields as f
from tests.vault_emulator._core import NAME, Backend, Core, Mount, Request, Response, rfc3339, route
from tests.vault_emulator._errors import VaultError

SYMMETRIC = {"aes128-gcm96": 16, "aes256-gcm96": 32, "chacha20-poly1305": 32}
ECDSA = {"ecdsa-p256": (ec.SECP256R1, "P-256", 32), "ecdsa-p384": (ec.SECP384R1, "P-384", 48),
         "ecdsa-p521": (ec.SECP521R1, "P-521", 66)}
RSA = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
KEY_TYPES = (*SYMMETRIC, "ed25519", *ECDSA, *RSA, "hmac")
HASHES: dict[str, Callable[[], Any] | None] = {
    "none": None, "sha1": hashlib.sha1, "sha2-224": hashlib.sha224, "sha2-256": hashlib.sha256,
    "sha2-384": hashlib.sha384, "sha2-512": hashlib.sha512, "sha3-224": hashlib.sha3_224,
    "sha3-256": hashlib.sha3_256, "sha3-384": hashlib.sha3_384, "sha3-512": hashlib.sha3_512,
}
_CRYPTO_HASHES = {"sha1": hashes.SHA1, "sha2-224": hashes.SHA224, "sha2-256": hashes.SHA256,
                  "sha2-384": hashes.SHA384, "sha2-512": hashes.SHA512, "sha3-224": hashes.SHA3_224,
                  "sha3-256": hashes.SHA3_256, "sha3-384": hashes.SHA3_384, "sha3-512": hashes.SHA3_512}
TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"
MISSING_CONTEXT = (
    "missing 'context' for key derivation; the key was created using a derived key, which means additional, "
    "per-request information must be included in order to perform operations with the key"
)
_ATOI = re.compile(r"[+-]?\d+")


class UserError(Exception):
    """A per-item error Vault reports with 400 (``errutil.UserError``)."""


class InternalError(Exception):
    """A per-item error Vault reports with 500 (``errutil.InternalError``)."""


def _go_b64_error(value: str) -> str:
    for index, char in enumerate(value):
        if not (char.isascii() and (char.isalnum() or char in "+/=")):
            return f"illegal base64 data at input byte {index}"
    return f"illegal base64 data at input byte {len(value) - len(value) % 4 if len(value) % 4 else max(len(value) - 1, 0)}"


def _b64(value: str) -> bytes:
    try:
        return f.b64decode(value)
    except (binascii.Error, ValueError):
        raise UserError(_go_b64_error(value)) from None


@dataclasses.dataclass
class KeyVersion:
    key: bytes  # symmetric key, ed25519 seed||pub, HMAC key (hmac type), or DER PKCS8 (ecdsa/rsa)
    hmac_key: bytes
    creation_time: float


@dataclasses.dataclass
class TransitKey:
    name: str
    type: str
    derived: bool = False
    convergent: bool = False
    exportable: bool = False
    allow_plaintext_backup: bool = False
    deletion_allowed: bool = False
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    latest_version: int = 0
    auto_rotate_period: int = 0
    key_size: int = 0
    versions: dict[int, KeyVersion] = dataclasses.field(default_factory=dict)

    # --- capabilities ---------------------------------------------------------------
    @property
    def can_encrypt(self) -> bool:
        return self.type in SYMMETRIC or self.type in RSA

    @property
    def can_sign(self) -> bool:
        return self.type == "ed25519" or self.type in ECDSA or self.type in RSA

    @property
    def can_derive(self) -> bool:
        return self.type in SYMMETRIC or self.type == "ed25519"

    def rotate(self) -> None:
        self.latest_version += 1
        self.versions[self.latest_version] = KeyVersion(_generate(self.type, self.key_size), secrets.token_bytes(32),
                                                        time.time())

    def version(self, ver: int) -> KeyVersion:
        entry = self.versions.get(ver)
        if entry is None or ver < self.min_decryption_version:
            raise UserError("no such key version")
        return entry

    # --- keys -----------------------------------------------------------------------
    def symmetric_key(self, ver: int, context: bytes | None) -> tuple[bytes, bytes | None]:
        """(encryption key, convergent HMAC key) of a version, derived from ``context`` when the key is."""
        size = SYMMETRIC[self.type]
        key = self.version(ver).key
        if not self.derived:
            return key, None
        if not context:
            raise UserError(MISSING_CONTEXT)
        if self.convergent:
            out = HKDF(hashes.SHA256(), size + 32, None, context).derive(key)
            return out[:size], out[size:]
        return HKDF(hashes.SHA256(), size, None, context).derive(key), None

    def ed25519_private(self, ver: int, context: bytes | None) -> ed25519.Ed25519PrivateKey:
        key = self.version(ver).key
        if self.derived:
            if not context:
                raise InternalError(f"error deriving key: {MISSING_CONTEXT}")
            seed = HKDF(hashes.SHA256(), 32, None, context).derive(key)
            return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return ed25519.Ed25519PrivateKey.from_private_bytes(key[:32])

    def private(self, ver: int) -> Any:
        return serialization.load_der_private_key(self.version(ver).key, None)

    def public_key_text(self, ver: int, context: bytes | None = None, *, trailing_newline: bool = True) -> str:
        if self.type == "ed25519":
            if self.derived and not context:
                return ""
            raw = self.ed25519_private(ver, context).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return base64.b64encode(raw).decode()
        pem = self.private(ver).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return pem if trailing_newline else pem.strip()

    def hmac_key(self, ver: int) -> bytes:
        entry = self.versions.get(ver)
        if entry is None:
            raise UserError("no such key version")
        if ver < self.min_decryption_version:
            raise UserError(f"key version disallowed by policy (minimum is {self.min_decryption_version})")
        return entry.key if self.type == "hmac" else entry.hmac_key

    # --- versioned strings ----------------------------------------------------------
    def parse(self, value: str, what: str) -> tuple[int, str]:
        """(version, base64 body) of a ``vault:vN:`` string, with Vault's checks and messages."""
        if not value.startswith("vault:v"):
            raise UserError(f"invalid {what}: no prefix")
        parts = value[len("vault:v"):].split(":", 1)
        if len(parts) != 2:
            raise UserError(f"invalid {what}: wrong number of fields")
        if not _ATOI.fullmatch(parts[0]):
            raise UserError(f"invalid {what}: version number could not be decoded")
        ver = int(parts[0]) or 1
        if ver > self.latest_version:
            raise UserError(f"invalid {what}: version is too new")
        if ver < self.min_decryption_version:
            raise UserError(TOO_OLD)
        return ver, parts[1]

    def encryption_version(self, ver: int) -> int:
        if ver == 0:
            return self.latest_version
        if ver < 0:
            raise UserError("requested version for encryption is negative")
        if ver > self.latest_version:
            raise UserError("requested version for encryption is higher than the latest key version")
        if ver < self.min_encryption_version:
            raise UserError("requested version for encryption is less than the minimum encryption key version")
        return ver

    # --- operations -----------------------------------------------------------------
    def encrypt(self, ver: int, context: bytes | None, plaintext_b64: str, aad: bytes | None) -> tuple[str, int]:
        if not self.can_encrypt:
            raise UserError(f"message encryption not supported for key type {self.type}")
        plaintext = _b64(plaintext_b64)
        ver = self.encryption_version(ver)
        if self.type in RSA:
            raw = self.private(ver).public_key().encrypt(
                plaintext, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
        else:
            key, convergent_key = self.symmetric_key(ver, context)
            if convergent_key is not None:
                nonce = hmac_lib.new(convergent_key, plaintext, hashlib.sha256).digest()[:12]
            else:
                nonce = secrets.token_bytes(12)
            raw = nonce + _aead(self.type, key).encrypt(nonce, plaintext, aad)
        return f"vault:v{ver}:" + base64.b64encode(raw).decode(), ver

    def decrypt(self, context: bytes | None, value: str, aad: bytes | None) -> bytes:
        if not self.can_encrypt:
            raise UserError(f"message decryption not supported for key type {self.type}")
        ver, body = self.parse(value, "ciphertext")
        try:
            raw = f.b64decode(body)
        except (binascii.Error, ValueError):
            raise UserError("invalid ciphertext: could not decode base64") from None
        if self.type in RSA:
            try:
                return self.private(ver).decrypt(raw, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
            except ValueError as exc:
                raise InternalError(f"failed to RSA decrypt the ciphertext: {exc}") from None
        key, _ = self.symmetric_key(ver, context)
        if len(raw) < 12:
            raise UserError("invalid ciphertext length")
        try:
            return _aead(self.type, key).decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise UserError("cipher: message authentication failed") from None

    def sign(self, ver: int, context: bytes | None, data: bytes, hash_name: str, prehashed: bool,
             marshaling: str, signature_algorithm: str) -> tuple[str, int, str]:
        if ver == 0:
            ver = self.latest_version
        elif ver < 0:
            raise UserError("requested version for signing is negative")
        elif ver > self.latest_version:
            raise UserError("requested version for signing is higher than the latest key version")
        elif self.min_encryption_version > 0 and ver < self.min_encryption_version:
            raise UserError("requested version for signing is less than the minimum encryption key version")
        public = ""
        if self.type == "ed25519":
            private = self.ed25519_private(ver, context)
            sig = private.sign(data)
            if self.derived:
                public = base64.b64encode(private.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
        elif self.type in ECDSA:
            der = self.private(ver).sign(*_ecdsa_args(self.type, data))
            if marshaling == "jws":
                size = ECDSA[self.type][2]
                r, s = decode_dss_signature(der)
                sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
            else:
                sig = der
        else:
            sig = self.private(ver).sign(data, _rsa_padding(signature_algorithm, hash_name), _prehash(hash_name))
        if marshaling == "jws":
            encoded = base64.urlsafe_b64encode(sig).decode().rstrip("=")
        else:
            encoded = base64.b64encode(sig).decode()
        return f"vault:v{ver}:" + encoded, ver, public

    def verify(self, context: bytes | None, data: bytes, signature: str, hash_name: str, marshaling: str,
               signature_algorithm: str) -> bool:
        ver, body = self.parse(signature, "signature")
        try:
            if marshaling == "jws":
                sig = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            else:
                sig = f.b64decode(body)
        except (binascii.Error, ValueError):
            raise UserError("invalid base64 signature value") from None
        try:
            if self.type == "ed25519":
                self.ed25519_private(ver, context).public_key().verify(sig, data)
            elif self.type in ECDSA:
                if marshaling == "jws":
                    size = ECDSA[self.type][2]
                    if len(sig) != 2 * size:
                        raise UserError("supplied signature is invalid")
                    sig = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
                else:
                    try:
                        decode_dss_signature(sig)
                    except ValueError:
                        raise UserError("supplied signature is invalid") from None
                self.private(ver).public_key().verify(sig, *_ecdsa_args(self.type, data))
            else:
                self.private(ver).public_key().verify(sig, data, _rsa_padding(signature_algorithm, hash_name, verify=True),
                                                      _prehash(hash_name))
        except InvalidSignature:
            return False
        return True


def _aead(key_type: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return ChaCha20Poly1305(key) if key_type == "chacha20-poly1305" else AESGCM(key)


def _ecdsa_args(key_type: str, digest: bytes) -> tuple[bytes, ec.ECDSA]:
    """Go ``ecdsa.Sign`` takes any hash length; normalise it to the curve size for ``cryptography``."""
    size = {"ecdsa-p256": 32, "ecdsa-p384": 48, "ecdsa-p521": 64}[key_type]
    algorithm = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[size]
    if len(digest) > size:
        if key_type == "ecdsa-p521":
            raise UserError("digest longer than 64 bytes is not supported for P-521")
        digest = digest[:size]
    return digest.rjust(size, b"\0"), ec.ECDSA(Prehashed(algorithm))


def _prehash(hash_name: str) -> Prehashed:
    return Prehashed(_CRYPTO_HASHES[hash_name]())


def _rsa_padding(algorithm: str, hash_name: str, *, verify: bool = False) -> padding.AsymmetricPadding:
    if algorithm == "pkcs1v15":
        return padding.PKCS1v15()
    salt = padding.PSS.AUTO if verify else padding.PSS.MAX_LENGTH
    return padding.PSS(padding.MGF1(_CRYPTO_HASHES[hash_name]()), salt)


def _generate(key_type: str, key_size: int) -> bytes:
    if key_type in SYMMETRIC:
        return secrets.token_bytes(SYMMETRIC[key_type])
    if key_type == "hmac":
        return secrets.token_bytes(key_size or 32)
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        return seed + private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if key_type in ECDSA:
        private_key: Any = ec.generate_private_key(ECDSA[key_type][0]())
    else:
        private_key = rsa.generate_private_key(65537, RSA[key_type])
    return private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def _decode_context(item: dict[str, Any], name: str = "context", error: str | None = None) -> bytes | None:
    value = item.get(name)
    if not value:
        return None
    try:
        return f.b64decode(str(value))
    except (binascii.Error, ValueError):
        raise UserError(error or _go_b64_error(str(value))) from None


class TransitBackend(Backend):
    type = "transit"

    def __init__(self, core: Core, mount: Mount) -> None:
        super().__init__(core, mount)
        self.keys: dict[str, TransitKey] = {}
        n = NAME
        self.routes = [
            route(r"keys/?", list=self.list_keys),
            route(rf"keys/(?P<name>{n})", read=self.read_key, update=self.create_key, delete=self.delete_key),
            route(rf"keys/(?P<name>{n})/config", update=self.config),
            route(rf"keys/(?P<name>{n})/rotate", update=self.rotate),
            route(rf"encrypt/(?P<name>{n})", update=self.encrypt, exists=self._exists),
            route(rf"decrypt/(?P<name>{n})", update=self.decrypt),
            route(rf"rewrap/(?P<name>{n})", update=self.rewrap),
            route(rf"datakey/(?P<plaintext>{n})/(?P<name>{n})", update=self.datakey),
            route(rf"hmac/(?P<name>{n})(?:/(?P<urlalgorithm>{n}))?", update=self.hmac),
            route(rf"sign/(?P<name>{n})(?:/(?P<urlalgorithm>{n}))?", update=self.sign),
            route(rf"verify/(?P<name>{n})(?:/(?P<urlalgorithm>{n}))?", update=self.verify),
            route(rf"export/(?P<type>{n})/(?P<name>{n})(?:/(?P<version>{n}))?", read=self.export),
        ]

    def _exists(self, req: Request, groups: dict[str, str]) -> bool:
        return groups["name"] in self.keys

    # --- key management -------------------------------------------------------------
    def _format(self, key: TransitKey, context: bytes | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": key.name, "type": key.type, "derived": key.derived, "deletion_allowed": key.deletion_allowed,
            "min_available_version": 0, "min_decryption_version": key.min_decryption_version,
            "min_encryption_version": key.min_encryption_version, "latest_version": key.latest_version,
            "exportable": key.exportable, "allow_plaintext_backup": key.allow_plaintext_backup,
            "supports_encryption": key.can_encrypt, "supports_decryption": key.can_encrypt,
            "supports_signing": key.can_sign, "supports_derivation": key.can_derive,
            "auto_rotate_period": key.auto_rotate_period, "imported_key": False,
        }
        if key.derived:
            data["kdf"] = "hkdf_sha256"
            data["convergent_encryption"] = key.convergent
            if key.convergent:
                data["convergent_encryption_version"] = -1
        live = {v: e for v, e in key.versions.items() if v >= key.min_decryption_version}
        if key.type == "hmac":
            data["key_size"] = key.key_size
        elif key.type in SYMMETRIC:
            data["keys"] = {str(v): int(e.creation_time) for v, e in live.items()}
        else:
            curve = "ed25519" if key.type == "ed25519" else ECDSA[key.type][1] if key.type in ECDSA else key.type
            data["keys"] = {
                str(v): {"certificate_chain": "", "creation_time": rfc3339(e.creation_time), "hybrid_public_key": "",
                         "name": curve, "public_key": key.public_key_text(v, context)}
                for v, e in live.items()
            }
        return data

    def list_keys(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data={"keys": sorted(self.keys)})

    def read_key(self, req: Request, groups: dict[str, str]) -> Response | None:
        key = self.keys.get(groups["name"])
        if key is None:
            return None
        try:
            context = _decode_context(req.data, error="failed to base64-decode context")
        except UserError as exc:
            raise VaultError(400, str(exc)) from None
        return Response(data=self._format(key, context))

    def create_key(self, req: Request, groups: dict[str, str]) -> Response:
        name, data = groups["name"], req.data
        derived, convergent = f.boolean(data, "derived"), f.boolean(data, "convergent_encryption")
        key_type = f.text(data, "type", "aes256-gcm96")
        key_size = f.integer(data, "key_size")
        if convergent and not derived:
            raise VaultError(400, "convergent encryption requires derivation to be enabled")
        if key_type not in KEY_TYPES:
            raise VaultError(400, f"unknown key type {key_type}")
        if key_size:
            if key_type != "hmac":
                raise VaultError(400, f"key_size is not valid for algorithm {key_type}")
            if not 32 <= key_size <= 512:
                raise VaultError(400, f"invalid key_size {key_size}")
        auto_rotate = f.duration(data, "auto_rotate_period")
        if auto_rotate and auto_rotate < 3600:
            raise VaultError(400, "auto rotate period must be 0 to disable or at least an hour")
        existing = self.keys.get(name)
        if existing is not None:
            return Response(data=self._format(existing), warnings=[f"key {name} already existed"])
        key = TransitKey(name=name, type=key_type, derived=derived, convergent=convergent,
                         exportable=f.boolean(data, "exportable"),
                         allow_plaintext_backup=f.boolean(data, "allow_plaintext_backup"),
                         auto_rotate_period=auto_rotate, key_size=key_size or (32 if key_type == "hmac" else 0))
        if derived and not key.can_derive:
            raise VaultError(400, f"key derivation and convergent encryption not supported for keys of type {key_type}")
        if convergent and key_type == "ed25519":
            raise VaultError(400, "convergent encryption not supported for keys of type ed25519")
        key.rotate()
        self.keys[name] = key
        return Response(data=self._format(key))

    def delete_key(self, req: Request, groups: dict[str, str]) -> None:
        name = groups["name"]
        key = self.keys.get(name)
        if key is None:
            raise VaultError(400, f"error deleting policy {name}: could not delete key; not found")
        if not key.deletion_allowed:
            raise VaultError(400, f"error deleting policy {name}: deletion is not allowed for this key")
        del self.keys[name]

    def _key(self, name: str, missing: str) -> TransitKey:
        key = self.keys.get(name)
        if key is None:
            raise VaultError(400, missing)
        return key

    def config(self, req: Request, groups: dict[str, str]) -> Response:
        name, data = groups["name"], req.data
        key = self._key(name, f"no existing key named {name} could be found")
        warnings: list[str] = []
        min_dec, min_enc = key.min_decryption_version, key.min_encryption_version
        changed = False
        if f.present(data, "min_decryption_version"):
            value = f.integer(data, "min_decryption_version")
            if value < 0:
                raise VaultError(400, "min decryption version cannot be negative")
            if value == 0:
                value = 1
                warnings.append("since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
            if value != min_dec:
                if value > key.latest_version:
                    raise VaultError(400, f"cannot set min decryption version of {value}, "
                                          f"latest key version is {key.latest_version}")
                min_dec, changed = value, True
        if f.present(data, "min_encryption_version"):
            value = f.integer(data, "min_encryption_version")
            if value < 0:
                raise VaultError(400, "min encryption version cannot be negative")
            if value != min_enc:
                if value > key.latest_version:
                    raise VaultError(400, f"cannot set min encryption version of {value}, "
                                          f"latest key version is {key.latest_version}")
                min_enc, changed = value, True
        if 0 < min_enc < min_dec:
            raise VaultError(400, f"cannot set min encryption/decryption values; min encryption version of {min_enc} "
                                  f"must be greater than or equal to min decryption version of {min_dec}")
        updates: dict[str, Any] = {}
        if f.present(data, "deletion_allowed"):
            updates["deletion_allowed"] = f.boolean(data, "deletion_allowed")
        if f.present(data, "exportable"):
            value = f.boolean(data, "exportable")
            if key.exportable and not value:
                raise VaultError(400, "exportable key cannot be made non-exportable")
            updates["exportable"] = value
        if f.present(data, "allow_plaintext_backup"):
            value = f.boolean(data, "allow_plaintext_backup")
            if key.allow_plaintext_backup and not value:
                raise VaultError(400, "plaintext backup cannot be disabled once allowed")
            updates["allow_plaintext_backup"] = value
        if f.present(data, "auto_rotate_period"):
            value = f.duration(data, "auto_rotate_period")
            if value and value < 3600:
                raise VaultError(400, "auto rotate period must be 0 to disable or at least an hour")
            updates["auto_rotate_period"] = value
        for field, value in updates.items():
            if getattr(key, field) != value:
                setattr(key, field, value)
                changed = True
        key.min_decryption_version, key.min_encryption_version = min_dec, min_enc
        if not changed:
            warnings.append("no changes were made")
        return Response(data=self._format(key), warnings=warnings or None)

    def rotate(self, req: Request, groups: dict[str, str]) -> Response:
        key = self._key(groups["name"], "key not found")
        key.rotate()
        return Response(data=self._format(key))

    # --- batch plumbing -------------------------------------------------------------
    @staticmethod
    def _items(data: dict[str, Any], single: Callable[[], dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        batch = data.get("batch_input")
        if batch is None:
            return [single()], False
        if not isinstance(batch, list) or not all(isinstance(i, dict) for i in batch):
            raise VaultError(400, "failed to parse batch input: expected a list of objects")
        if not batch:
            raise VaultError(400, "missing batch input to process")
        return batch, True

    @staticmethod
    def _respond(data: dict[str, Any], results: list[dict[str, Any]], items: list[dict[str, Any]], batch: bool,
                 single_keys: tuple[str, ...], warnings: list[str] | None = None) -> Response:
        if not batch:
            result = results[0]
            if "error" in result:
                raise VaultError(500 if result.pop("_internal", False) else 400, result["error"])
            return Response(data={k: result[k] for k in single_keys if k in result}, warnings=warnings)
        user_error = any("error" in r and not r.get("_internal") for r in results)
        internal_error = any(r.get("_internal") for r in results)
        for result, item in zip(results, items):
            result.pop("_internal", None)
            result["reference"] = str(item.get("reference", "") or "")
        status = 200
        if user_error or internal_error:
            status = 400 if user_error else 500
            if f.present(data, "partial_failure_response_code") and any("error" not in r for r in results):
                code = f.integer(data, "partial_failure_response_code")
                if 1 <= code <= 599:
                    status = code
        return Response(data={"batch_results": results}, status=status, warnings=warnings)

    @staticmethod
    def _run(operation: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return operation()
        except UserError as exc:
            return {"error": str(exc)}
        except InternalError as exc:
            return {"error": str(exc), "_internal": True}

    @staticmethod
    def _check_contexts(items: list[dict[str, Any]]) -> None:
        context_set = bool(items[0].get("context"))
        if any(bool(item.get("context")) != context_set for item in items):
            raise VaultError(400, "context should be set either in all the request blocks or in none")

    # --- encryption -----------------------------------------------------------------
    def encrypt(self, req: Request, groups: dict[str, str]) -> Response:
        data, name = req.data, groups["name"]

        def single() -> dict[str, Any]:
            if not f.present(data, "plaintext"):
                raise VaultError(400, "missing plaintext to encrypt")
            return {k: data.get(k) for k in ("plaintext", "context", "nonce", "key_version", "associated_data")}

        items, batch = self._items(data, single)
        self._check_contexts(items)
        warnings = None
        if req.op == "create":
            convergent = f.boolean(data, "convergent_encryption")
            context_set = bool(items[0].get("context"))
            if convergent and not context_set:
                raise VaultError(400, "convergent encryption requires derivation to be enabled, so context is required")
            key_type = f.text(data, "type", "aes256-gcm96")
            if key_type not in SYMMETRIC and key_type not in RSA:  # only encryption key types can be upserted
                raise VaultError(400, f"unknown key type {key_type}")
            if name not in self.keys:
                key = TransitKey(name=name, type=key_type, derived=context_set, convergent=convergent)
                key.rotate()
                self.keys[name] = key
            else:
                warnings = ["Attempted creation of the key during the encrypt operation, but it was created beforehand"]
        key = self._key(name, "encryption key not found")

        def one(item: dict[str, Any], index: int) -> dict[str, Any]:
            context = _decode_context(item)
            if item.get("nonce"):
                raise UserError("provided nonce not allowed for this key")
            aad = _decode_context(item, "associated_data")
            if aad is not None and key.type in RSA:
                raise UserError(f"'[{index}].associated_data' provided for non-AEAD cipher suite {key.type}")
            if item.get("plaintext") is None:
                raise UserError("missing plaintext to encrypt")
            ciphertext, version = key.encrypt(f.integer(item, "key_version"), context, str(item["plaintext"]), aad)
            return {"ciphertext": ciphertext, "key_version": version}

        results = [self._run(lambda i=i, item=item: one(item, i)) for i, item in enumerate(items)]
        return self._respond(data, results, items, batch, ("ciphertext", "key_version"), warnings)

    def _ciphertext_items(self, data: dict[str, Any], name: str,
                          fields: tuple[str, ...]) -> tuple[list[dict[str, Any]], bool, TransitKey]:
        """Items of a decrypt or rewrap request (single or batch), checked, and the key they name."""

        def single() -> dict[str, Any]:
            if not f.text(data, "ciphertext"):
                raise VaultError(400, "missing ciphertext to decrypt")
            return {k: data.get(k) for k in ("ciphertext", *fields)}

        items, batch = self._items(data, single)
        self._check_contexts(items)
        return items, batch, self._key(name, "encryption key not found")

    @staticmethod
    def _decrypt_item(key: TransitKey, item: dict[str, Any], *, with_aad: bool) -> tuple[bytes | None, bytes]:
        """(context, plaintext) of one item's ciphertext; ``associated_data`` is read only for decrypt."""
        if not item.get("ciphertext"):
            raise UserError("missing ciphertext to decrypt")
        context = _decode_context(item)
        aad = _decode_context(item, "associated_data") if with_aad else None
        return context, key.decrypt(context, str(item["ciphertext"]), aad)

    def decrypt(self, req: Request, groups: dict[str, str]) -> Response:
        data = req.data
        items, batch, key = self._ciphertext_items(data, groups["name"], ("context", "nonce", "associated_data"))

        def one(item: dict[str, Any]) -> dict[str, Any]:
            _, plaintext = self._decrypt_item(key, item, with_aad=True)
            return {"plaintext": base64.b64encode(plaintext).decode()}

        results = [self._run(lambda item=item: one(item)) for item in items]
        return self._respond(data, results, items, batch, ("plaintext",))

    def rewrap(self, req: Request, groups: dict[str, str]) -> Response:
        data = req.data
        items, batch, key = self._ciphertext_items(data, groups["name"], ("context", "nonce", "key_version"))

        def one(item: dict[str, Any]) -> dict[str, Any]:
            context, plaintext = self._decrypt_item(key, item, with_aad=False)
            ciphertext, version = key.encrypt(f.integer(item, "key_version"), context,
                                              base64.b64encode(plaintext).decode(), None)
            return {"ciphertext": ciphertext, "key_version": version}

        results = [self._run(lambda item=item: one(item)) for item in items]
        return self._respond(data, results, items, batch, ("ciphertext", "key_version"))

    def datakey(self, req: Request, groups: dict[str, str]) -> Response:
        data = req.data
        kind = groups["plaintext"]
        if kind not in ("plaintext", "wrapped"):
            raise VaultError(400, "Invalid path, must be 'plaintext' or 'wrapped'")
        context = f.b64field(data, "context", "failed to base64-decode context")
        nonce = f.b64field(data, "nonce", "failed to base64-decode nonce")
        key = self._key(groups["name"], "encryption key not found")
        bits = f.integer(data, "bits", 256)
        if bits not in (128, 256, 512):
            raise VaultError(400, "invalid bit length")
        if nonce:
            raise VaultError(400, "provided nonce not allowed for this key")
        new_key = secrets.token_bytes(bits // 8)
        aad = f.b64field(data, "associated_data", "failed to base64-decode associated_data")
        try:
            ciphertext, version = key.encrypt(f.integer(data, "key_version"), context,
                                              base64.b64encode(new_key).decode(), aad)
        except UserError as exc:
            raise VaultError(400, str(exc)) from None
        out: dict[str, Any] = {"ciphertext": ciphertext, "key_version": version}
        if kind == "plaintext":
            out["plaintext"] = base64.b64encode(new_key).decode()
        return Response(data=out)

    # --- HMAC, signing ----------------------------------------------------------------
    def hmac(self, req: Request, groups: dict[str, str]) -> Response:
        data = req.data
        key = self._key(groups["name"], "encryption key not found")
        algorithm = groups.get("urlalgorithm") or f.text(data, "algorithm", "sha2-256")
        ver = f.integer(data, "key_version")
        if ver == 0:
            ver = key.latest_version
        elif ver != key.latest_version and key.min_encryption_version > 0 and ver < key.min_encryption_version:
            raise VaultError(400, "cannot generate HMAC: version is too old (disallowed by policy)")
        try:
            hmac_key = key.hmac_key(ver)
        except UserError as exc:
            raise VaultError(400, str(exc)) from None
        hash_factory = HASHES.get(algorithm)
        if hash_factory is None:
            raise VaultError(400, f"unsupported algorithm {algorithm!r}".replace("'", '"'))
        items, batch = self._items(data, lambda: {"input": data.get("input", "")})

        def one(item: dict[str, Any]) -> dict[str, Any]:
            if item.get("input") is None:
                raise UserError("missing input for HMAC")
            try:
                raw = f.b64decode(str(item["input"]))
            except (binascii.Error, ValueError):
                raise UserError(f"unable to decode input as base64: {_go_b64_error(str(item['input']))}") from None
            mac = hmac_lib.new(hmac_key, raw, hash_factory).digest()
            return {"hmac": f"vault:v{ver}:" + base64.b64encode(mac).decode()}

        results = [self._run(lambda item=item: one(item)) for item in items]
        return self._respond(data, results, items, batch, ("hmac",))

    def _verify_hmac(self, req: Request, key: TransitKey, algorithm: str, items: list[dict[str, Any]],
                     batch: bool) -> Response:
        hash_factory = HASHES.get(algorithm)
        if hash_factory is None:
            raise VaultError(400, f'unsupported algorithm "{algorithm}"')

        def one(item: dict[str, Any]) -> dict[str, Any]:
            if item.get("input") is None:
                raise UserError("missing input")
            try:
                raw = f.b64decode(str(item["input"]))
            except (binascii.Error, ValueError):
                raise UserError(f"unable to decode input as base64: {_go_b64_error(str(item['input']))}") from None
            value = item.get("hmac")
            if value is None:
                raise UserError("missing hmac")
            value = str(value)
            if not value.startswith("vault:v"):
                raise UserError("invalid HMAC to verify: no prefix")
            parts = value[len("vault:v"):].split(":", 1)
            if len(parts) != 2:
                raise UserError("invalid HMAC: wrong number of fields")
            if not _ATOI.fullmatch(parts[0]):
                raise UserError("invalid HMAC: version number could not be decoded")
            ver = int(parts[0])
            expected = _b64(parts[1])
            if ver > key.latest_version:
                raise UserError("invalid HMAC: version is too new")
            if ver < key.min_decryption_version:
                raise UserError("HMAC version is too old (disallowed by policy)")
            mac = hmac_lib.new(key.hmac_key(ver), raw, hash_factory).digest()
            return {"valid": hmac_lib.compare_digest(mac, expected)}

        results = [self._run(lambda item=item: one(item)) for item in items]
        return self._respond(req.data, results, items, batch, ("valid",))

    @staticmethod
    def _sign_options(data: dict[str, Any], groups: dict[str, str]) -> tuple[str, str, bool, str]:
        hash_name = groups.get("urlalgorithm") or f.text(data, "hash_algorithm") or f.text(data, "algorithm") or "sha2-256"
        if hash_name not in HASHES:
            raise VaultError(400, f'invalid hash algorithm "{hash_name}"')
        marshaling = f.text(data, "marshaling_algorithm", "asn1")
        if marshaling not in ("asn1", "jws"):
            raise VaultError(400, f'invalid marshaling type "{marshaling}"')
        return hash_name, marshaling, f.boolean(data, "prehashed"), f.text(data, "signature_algorithm", "pss")

    @staticmethod
    def _digest(key: TransitKey, raw: bytes, hash_name: str, prehashed: bool) -> bytes:
        factory = HASHES[hash_name]
        if key.type != "ed25519" and not prehashed and factory is not None:
            return factory(raw).digest()
        return raw

    def sign(self, req: Request, groups: dict[str, str]) -> Response:
        data = req.data
        hash_name, marshaling, prehashed, sig_alg = self._sign_options(data, groups)
        key = self._key(groups["name"], "signing key not found")
        if not key.can_sign:
            raise VaultError(400, f"key type {key.type} does not support signing")
        if hash_name == "none" and (not prehashed or sig_alg != "pkcs1v15"):
            raise VaultError(400, "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15")
        items, batch = self._items(data, lambda: {"input": data.get("input") or "", "context": data.get("context")})

        def one(item: dict[str, Any]) -> dict[str, Any]:
            if item.get("input") is None:
                raise UserError("missing input")
            try:
                raw = f.b64decode(str(item["input"]))
            except (binascii.Error, ValueError):
                raise UserError(f"unable to decode input as base64: {_go_b64_error(str(item['input']))}") from None
            digest = self._digest(key, raw, hash_name, prehashed)
            context = _decode_context(item, error="failed to base64-decode context")
            signature, version, public = key.sign(f.integer(data, "key_version"), context, digest, hash_name,
                                                  prehashed, marshaling, sig_alg)
            out: dict[str, Any] = {"signature": signature, "key_version": version}
            if public:
                out["publickey" if batch else "public_key"] = public
            return out

        results = [self._run(lambda item=item: one(item)) for item in items]
        if batch:
            for result in results:
                result.setdefault("key_version", 0)
        return self._respond(data, results, items, batch, ("signature", "key_version", "public_key"))

    def verify(self, req: Request, groups: dict[str, str]) -> Response:
        data = req.data

        def single() -> dict[str, Any]:
            item: dict[str, Any] = {"input": data.get("input") or "", "context": data.get("context")}
            for field in ("signature", "hmac"):
                if f.present(data, field):
                    item[field] = data[field]
            return item

        items, batch = self._items(data, single)
        has_sig = any("signature" in i and i["signature"] is not None for i in items)
        has_hmac = any("hmac" in i and i["hmac"] is not None for i in items)
        if has_sig and has_hmac:
            raise VaultError(400, "provide one of 'signature' or 'hmac'")
        if not has_sig and not has_hmac:
            raise VaultError(400, "neither a 'signature' nor an 'hmac' were given to verify")
        if has_hmac:
            key = self._key(groups["name"], "encryption key not found")
            algorithm = groups.get("urlalgorithm") or f.text(data, "algorithm") or f.text(data, "hash_algorithm") or "sha2-256"
            return self._verify_hmac(req, key, algorithm, items, batch)
        hash_name, marshaling, prehashed, sig_alg = self._sign_options(data, groups)
        key = self._key(groups["name"], "signature verification key not found")
        if not key.can_sign:
            raise VaultError(400, f"key type {key.type} does not support verification")
        if hash_name == "none" and (not prehashed or sig_alg != "pkcs1v15"):
            raise VaultError(400, "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15")

        def one(item: dict[str, Any]) -> dict[str, Any]:
            if item.get("input") is None:
                raise UserError("missing input")
            try:
                raw = f.b64decode(str(item["input"]))
            except (binascii.Error, ValueError):
                raise UserError(f"unable to decode input as base64: {_go_b64_error(str(item['input']))}") from None
            if item.get("signature") is None:
                raise UserError("missing signature")
            digest = self._digest(key, raw, hash_name, prehashed)
            context = _decode_context(item, error="failed to base64-decode context")
            return {"valid": key.verify(context, digest, str(item["signature"]), hash_name, marshaling, sig_alg)}

        results = [self._run(lambda item=item: one(item)) for item in items]
        return self._respond(data, results, items, batch, ("valid",))

    # --- export ---------------------------------------------------------------------------
    def export(self, req: Request, groups: dict[str, str]) -> Response | None:
        export_type, version = groups["type"], groups.get("version", "")
        if export_type not in ("encryption-key", "signing-key", "hmac-key", "public-key", "certificate-chain"):
            raise VaultError(400, f"invalid export type: {export_type}")
        key = self.keys.get(groups["name"])
        if key is None:
            return None
        if not key.exportable and export_type not in ("public-key", "certificate-chain"):
            raise VaultError(400, "private key material is not exportable")
        if export_type == "encryption-key" and not key.can_encrypt:
            raise VaultError(400, "encryption not supported for the key")
        if export_type in ("signing-key", "public-key", "certificate-chain") and not key.can_sign:
            raise VaultError(400, "signing not supported for the key")
        if version:
            if version == "latest":
                number = key.latest_version
            else:
                digits = version.removeprefix("v")
                if not _ATOI.fullmatch(digits):
                    raise VaultError(400, "invalid key version")
                number = int(digits)
            if number < key.min_decryption_version:
                raise VaultError(400, "version for export is below minimum decryption version")
            if number not in key.versions:
                raise VaultError(400, "version does not exist or cannot be found")
            selected = [number]
        else:
            selected = [v for v in key.versions if v >= key.min_decryption_version]
        return Response(data={"name": key.name, "type": key.type,
                              "keys": {str(v): self._export_one(key, v, export_type) for v in selected}})

    @staticmethod
    def _export_one(key: TransitKey, ver: int, export_type: str) -> str:
        entry = key.versions[ver]
        if export_type == "hmac-key":
            return base64.b64encode(key.hmac_key(ver)).decode()
        if export_type == "certificate-chain":
            return ""
        if export_type == "public-key":
            return key.public_key_text(ver, trailing_newline=False)
        if key.type in SYMMETRIC or key.type == "ed25519":
            return base64.b64encode(entry.key).decode()
        private = key.private(ver)
        fmt = serialization.PrivateFormat.TraditionalOpenSSL  # SEC1 "EC PRIVATE KEY" / PKCS#1 "RSA PRIVATE KEY"
        return private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode().strip()
