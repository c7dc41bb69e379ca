"""Request-field decoding the way Vault's framework does it (spec §1.1 "Field typing")."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tests.vault_emulator._errors import VaultError

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def present(data: dict[str, Any], name: str) -> bool:
    """A field counts as given when present and not JSON ``null``."""
    return data.get(name) is not None


def text(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise VaultError(400, f"error converting input {value!r} for field {name!r}: expected a string")


def boolean(data: dict[str, Any], name: str, default: bool = False) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE or value == "":
            return False
    raise VaultError(400, f"error converting input {value!r} for field {name!r}: cannot parse '' as bool")


def integer(data: dict[str, Any], name: str, default: int = 0) -> int:
    value = data.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise VaultError(400, f"error converting input {value!r} for field {name!r}: expected an integer")


def duration(data: dict[str, Any], name: str, default: int = 0) -> int:
    """Seconds from an integer, a numeric string or a Go duration string (``"90s"``, ``"1h30m"``, ``"2d"``)."""
    value = data.get(name)
    if value is None or value == "":
        return default
    seconds = parse_duration(value)
    if seconds is None:
        raise VaultError(400, f"error converting input {value!r} for field {name!r}: time: invalid duration {value!r}")
    return seconds


def parse_duration(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if value == "0":
        return 0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        return None
    return int(total)


def comma_list(data: dict[str, Any], name: str, default: list[str] | None = None) -> list[str]:
    """A JSON list or a comma-separated string, trimmed, empties dropped."""
    value = data.get(name)
    if value is None:
        return list(default or [])
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = [str(item) for item in value]
    else:
        raise VaultError(400, f"error converting input {value!r} for field {name!r}: expected a list")
    return [item.strip() for item in items if item.strip()]


def policy_list(data: dict[str, Any], name: str) -> list[str]:
    """Policy names: lower-cased, de-duplicated, sorted (Vault ``policyutil.SanitizePolicies``)."""
    return sorted({item.lower() for item in comma_list(data, name)})


def string_map(data: dict[str, Any], name: str) -> dict[str, str] | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    raise VaultError(400, f"error converting input {value!r} for field {name!r}: expected a map")


def b64decode(value: str) -> bytes:
    """Go ``base64.StdEncoding.DecodeString``: padded standard alphabet; raises ``binascii.Error``."""
    if len(value) % 4:
        raise binascii.Error("illegal base64 data")
    return base64.b64decode(value, validate=True)


def b64field(data: dict[str, Any], name: str, error: str) -> bytes | None:
    """A base64 field (``None`` when absent or empty); ``error`` is the 400 message on bad input."""
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return b64decode(str(value))
    except (binascii.Error, ValueError):
        raise VaultError(400, error) from None
