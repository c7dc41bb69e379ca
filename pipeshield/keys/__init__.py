"""Key management: one ``KeyProvider`` interface, a local keyring by default, Vault Transit when configured.

>>> from pipeshield.keys import open_key_provider
>>> provider = open_key_provider()            # from PIPESHIELD_* settings
>>> data_key = provider.generate_data_key("pipeshield-data")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeshield.config import Settings
from pipeshield.keys._base import DataKey, KeyInfo, KeyProvider, KeyType, Signature
from pipeshield.keys._local import LocalKeyProvider, load_master_key

if TYPE_CHECKING:
    from pipeshield.keys._vault import VaultTransitKeyProvider

__all__ = [
    "DataKey",
    "KeyInfo",
    "KeyProvider",
    "KeyType",
    "LocalKeyProvider",
    "Signature",
    "VaultTransitKeyProvider",
    "open_key_provider",
]


def open_key_provider(settings: Settings | None = None) -> KeyProvider:
    """The key provider the settings ask for: Vault Transit when a Vault is set, else the local keyring."""
    settings = settings or Settings.load()
    if settings.key_provider == "vault":
        from pipeshield.keys._vault import VaultTransitKeyProvider

        return VaultTransitKeyProvider.from_settings(settings)
    keyring_dir = settings.keyring_dir or settings.home / "keyring"
    master_key_file = settings.master_key_file or settings.home / "master.key"
    return LocalKeyProvider(keyring_dir, load_master_key(settings.master_key, master_key_file))


def __getattr__(name: str) -> object:
    if name == "VaultTransitKeyProvider":
        from pipeshield.keys._vault import VaultTransitKeyProvider

        return VaultTransitKeyProvider
    raise AttributeError(name)
