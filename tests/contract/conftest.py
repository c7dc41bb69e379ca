"""Providers under contract. Every test in ``test_key_provider_contract.py`` runs against each:
the local keyring, and Vault Transit on the emulator (or on a real Vault when VAULT_ADDR/VAULT_TOKEN are set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeshield.keys import KeyProvider, LocalKeyProvider, VaultTransitKeyProvider
from pipeshield.keys._vault_auth import TokenAuth
from tests.fixtures.vault import VaultServer


@pytest.fixture(scope="session")
def contract_transit_mount(vault: VaultServer) -> str:
    return vault.enable_transit("contract-transit")


@pytest.fixture(params=["local", "vault"])
def key_provider(request: pytest.FixtureRequest, tmp_path: Path, master_key: bytes) -> Iterator[KeyProvider]:
    if request.param == "local":
        provider: KeyProvider = LocalKeyProvider(tmp_path / "keyring", master_key)
    else:
        vault: VaultServer = request.getfixturevalue("vault")
        mount = request.getfixturevalue("contract_transit_mount")
        provider = VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token), transit_mount=mount)
    with provider:
        yield provider
