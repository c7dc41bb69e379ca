"""The ``vault:v<N>:<base64>`` string used for wrapped keys, ciphertexts, signatures and HMACs."""

from __future__ import annotations

import base64
import binascii
import re

from pipeshield.errors import InvalidWrappedKeyError

_PREFIX = re.compile(r"^vault:v(\d{1,9}):")


def encode(version: int, raw: bytes) -> str:
    """Format ``raw`` bytes made with key ``version`` the way Vault Transit does."""
    return f"vault:v{version}:" + base64.b64encode(raw).decode("ascii")


def decode(value: str, what: str = "wrapped key") -> tuple[int, bytes]:
    """Split a ``vault:vN:`` string into (version, raw bytes); raises ``InvalidWrappedKeyError``."""
    if not isinstance(value, str):
        raise InvalidWrappedKeyError(f"invalid {what}: expected a string")
    match = _PREFIX.match(value)
    if not match:
        raise InvalidWrappedKeyError(f"invalid {what}: no 'vault:vN:' prefix")
    version = max(int(match.group(1)), 1)  # Vault treats v0 as v1
    try:
        raw = base64.b64decode(value[match.end():], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWrappedKeyError(f"invalid {what}: could not decode base64") from None
    return version, raw
