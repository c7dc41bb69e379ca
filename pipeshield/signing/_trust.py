"""Which public keys a verifier trusts: every version of one signing key, with retired versions marked."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeshield.errors import KeyVersionError, SignatureFormatError
from pipeshield.keys import KeyProvider
from pipeshield.signing._oms import pem_hint


@dataclasses.dataclass(frozen=True)
class TrustedKeys:
    """Public keys of one signing key by version. Versions below ``min_version`` are retired: a signature
    made with one is refused with a message saying so (key rotation keeps older versions verifying
    until they are retired with ``pipeshield keys retire NAME --below N``)."""

    key_name: str
    public_keys: Mapping[int, str]
    min_version: int = 1

    def __post_init__(self) -> None:
        for version, pem in self.public_keys.items():
            key = serialization.load_pem_public_key(pem.encode("ascii"))
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise SignatureFormatError(f"key {self.key_name!r} v{version} is not an ECDSA P-256 public key")

    @classmethod
    def from_provider(cls, provider: KeyProvider, key_name: str) -> TrustedKeys:
        """Every version the provider still holds, with its ``min_decryption_version`` as ``min_version``."""
        info = provider.key_info(key_name)
        keys = {}
        for version in range(1, info.latest_version + 1):
            try:
                keys[version] = provider.public_key_pem(key_name, version)
            except KeyVersionError:
                continue  # trimmed or retired versions a provider no longer exports
        return cls(key_name, keys, info.min_decryption_version)

    @classmethod
    def from_pem(cls, pem: str, *, key_name: str = "external", version: int = 1) -> TrustedKeys:
        """A single trusted public key (e.g. the output of ``pipeshield keys public-key``)."""
        return cls(key_name, {version: pem})

    def lookup(self, hint: str | None) -> tuple[int, ec.EllipticCurvePublicKey] | None:
        """(version, public key) whose model-signing hint is ``hint``, or None."""
        for version, pem in sorted(self.public_keys.items()):
            if hint and pem_hint(pem) == hint:
                key = serialization.load_pem_public_key(pem.encode("ascii"))
                assert isinstance(key, ec.EllipticCurvePublicKey)
                return version, key
        return None
