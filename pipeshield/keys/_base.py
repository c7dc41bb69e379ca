"""The ``KeyProvider`` interface: what envelope encryption, tokenization and signing need from a key service.

The semantics follow HashiCorp Vault Transit so that the local provider and Vault are
interchangeable: named keys with integer versions, rotation, a minimum decryption version,
and ``vault:v<N>:<base64>`` strings for wrapped keys, ciphertexts, signatures and HMACs.
"""

from __future__ import annotations

import abc
import dataclasses
import enum


class KeyType(str, enum.Enum):
    """Key types pipeshield uses (Vault Transit type names)."""

    AES256_GCM96 = "aes256-gcm96"
    ECDSA_P256 = "ecdsa-p256"

    @property
    def can_encrypt(self) -> bool:
        return self is KeyType.AES256_GCM96

    @property
    def can_sign(self) -> bool:
        return self is KeyType.ECDSA_P256


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """Public facts about a key: never key material."""

    name: str
    type: KeyType
    latest_version: int
    min_decryption_version: int
    derived: bool = False
    versions: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class DataKey:
    """A fresh data key: ``plaintext`` (use, then drop) and ``wrapped`` (store beside the data)."""

    key_name: str
    key_version: int
    wrapped: str
    plaintext: bytes = dataclasses.field(repr=False)

    def __repr__(self) -> str:  # the plaintext never appears in logs or tracebacks
        return f"DataKey(key_name={self.key_name!r}, key_version={self.key_version}, wrapped=<{len(self.wrapped)} chars>)"


@dataclasses.dataclass(frozen=True)
class Signature:
    """An ECDSA signature: DER bytes plus the ``vault:vN:`` string and the key version that made it."""

    key_name: str
    key_version: int
    der: bytes
    encoded: str


class KeyProvider(abc.ABC):
    """Key operations used by pipeshield. Implementations must never fall back to plaintext.

    ``context`` binds derived keys (``derived=True``) to caller data, as Vault Transit does;
    it is required for derived keys and refused for non-derived ones.
    """

    #: short provider name shown in headers, spans and logs ("local" or "vault")
    name: str = "abstract"

    # --- key lifecycle ---------------------------------------------------
    @abc.abstractmethod
    def create_key(self, name: str, key_type: KeyType = KeyType.AES256_GCM96, *, derived: bool = False) -> KeyInfo:
        """Create a key; creating an existing key of the same type returns it unchanged."""

    @abc.abstractmethod
    def key_info(self, name: str) -> KeyInfo:
        """Versions and policy of a key. Raises ``KeyNotFoundError``."""

    @abc.abstractmethod
    def list_keys(self) -> list[str]:
        """Names of all keys, sorted."""

    @abc.abstractmethod
    def rotate(self, name: str) -> KeyInfo:
        """Add a new latest version; older versions still decrypt/verify down to the minimum."""

    @abc.abstractmethod
    def set_min_decryption_version(self, name: str, version: int) -> KeyInfo:
        """Refuse versions below ``version`` for decrypt, rewrap and verify from now on."""

    # --- envelope encryption --------------------------------------------
    @abc.abstractmethod
    def generate_data_key(self, name: str, *, context: bytes | None = None) -> DataKey:
        """A fresh 256-bit data key, wrapped under the latest version of ``name``."""

    @abc.abstractmethod
    def unwrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> bytes:
        """Plaintext of a wrapped data key (or any ciphertext). Raises on tampering or a retired version."""

    @abc.abstractmethod
    def rewrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> str:
        """Re-encrypt under the latest version without revealing the plaintext to the caller."""

    @abc.abstractmethod
    def encrypt(self, name: str, plaintext: bytes, *, context: bytes | None = None) -> str:
        """Encrypt a small value (field encryption); returns a ``vault:vN:`` string."""

    # decrypt is the same operation as unwrap for a ciphertext string
    def decrypt(self, name: str, ciphertext: str, *, context: bytes | None = None) -> bytes:
        """Decrypt a value made by :meth:`encrypt`."""
        return self.unwrap(name, ciphertext, context=context)

    @abc.abstractmethod
    def hmac(self, name: str, data: bytes) -> str:
        """Keyed HMAC-SHA-256 under the key's latest version; returns ``vault:vN:<b64>``."""

    # --- signing ----------------------------------------------------------
    @abc.abstractmethod
    def sign_digest(self, name: str, digest: bytes) -> Signature:
        """ECDSA P-256 signature (DER) over a SHA-256 digest, with the latest key version."""

    @abc.abstractmethod
    def verify_digest(self, name: str, digest: bytes, signature: str) -> bool:
        """True when ``signature`` (``vault:vN:`` form) is valid for ``digest``; raises on malformed input."""

    @abc.abstractmethod
    def public_key_pem(self, name: str, version: int | None = None) -> str:
        """PEM (SubjectPublicKeyInfo) public key of a signing key version (default: latest)."""

    def close(self) -> None:
        """Release sessions and tokens held by the provider."""

    def __enter__(self) -> KeyProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
