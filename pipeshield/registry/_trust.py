"""Which public keys a verifier trusts: a directory of PEM files, or the key provider's public keys.

A verifier (the registry server, a deploy stage) needs no signing rights: give it the directory
:data:`TRUSTED_KEYS_DIR_ENV` holding ``<key>.v<N>.pem`` files (``pipeshield keys public-key <key>
--version N``), or a key provider whose credentials may only read public keys (Vault:
``read`` on ``transit/keys/<key>``). Removing a version's PEM file revokes it.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeshield.config import Settings
from pipeshield.errors import ConfigError
from pipeshield.keys import KeyProvider, open_key_provider
from pipeshield.signing import TrustedKeys

TRUSTED_KEYS_DIR_ENV = "PIPESHIELD_TRUSTED_KEYS_DIR"
"""The setting (``Settings.trusted_keys_dir``) naming the directory of trusted public keys."""


def keys_from_directory(directory: Path, key_name: str) -> TrustedKeys:
    """Every ``<key_name>.v<N>.pem`` in ``directory``; none is a ``ConfigError``."""
    pattern = re.compile(rf"^{re.escape(key_name)}\.v([1-9][0-9]*)\.pem$")
    if not directory.is_dir():
        raise ConfigError(TRUSTED_KEYS_DIR_ENV, f"{str(directory)!r} is not a directory")
    found = {}
    for path in directory.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path.read_text(encoding="ascii")
    if not found:
        raise ConfigError(TRUSTED_KEYS_DIR_ENV,
                          f"no public key {key_name}.v<N>.pem in {str(directory)!r}")
    return TrustedKeys(key_name, found)


def trusted_keys(settings: Settings, provider: KeyProvider | None = None, key_name: str | None = None,
                 keys_dir: Path | None = None) -> TrustedKeys:
    """``keys_dir`` (default: ``settings.trusted_keys_dir``) when set, else every exportable version of the
    provider's signing key (``key_name``, default ``settings.signing_key``)."""
    key = key_name or settings.signing_key
    directory = keys_dir or settings.trusted_keys_dir
    if directory is not None:
        return keys_from_directory(directory, key)
    if provider is not None:
        return TrustedKeys.from_provider(provider, key)
    with open_key_provider(settings) as opened:
        return TrustedKeys.from_provider(opened, key)
