"""Vault faults not covered by ``test_vault_faults.py``: a Vault that accepts connections but never answers
(slow past the timeout), and a stage's permission revoked while it is working. Encryption through the
envelope must then refuse cleanly and leave nothing at its destination."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeshield.envelope import EnvelopeKeyError, decrypt_file, encrypt_file
from pipeshield.errors import PermissionDeniedError, ProviderUnavailableError
from pipeshield.keys import VaultTransitKeyProvider
from pipeshield.keys._vault_auth import AppRoleAuth, TokenAuth
from tests.fixtures.vault import VaultServer


@pytest.mark.reliability("fault", "Vault slow: accepts connections, never answers",
                         "ProviderUnavailableError after the per-request timeout and bounded retries; "
                         "no file at the destination")
def test_silent_vault_times_out(tmp_path: Path, reliability) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        (tmp_path / "plain").write_bytes(b"x" * 1000)
        with VaultTransitKeyProvider(address, TokenAuth("hvs.not-a-real-token"), timeout=0.5, retries=1,
                                     backoff=0.01) as provider:
            with pytest.raises(ProviderUnavailableError, match="after 2 attempts") as info:
                encrypt_file(tmp_path / "plain", tmp_path / "out.pse", provider, key_name="k", context={})
    assert "not-a-real-token" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]
    reliability(observed=f"{type(info.value).__name__}: {info.value}", bytes_lost=0)


@pytest.mark.reliability("fault", "Vault permission revoked mid-run (policy rewritten while the stage works)",
                         "the next call is refused with PermissionDeniedError naming the path; nothing written")
def test_permission_revoked_mid_run(vault: VaultServer, tmp_path: Path, reliability) -> None:
    transit = vault.enable_transit("revoke")
    key = vault.unique("data")
    vault.client().secrets.transit.create_key(key, mount_point=transit)
    grants = f"""
path "{transit}/datakey/plaintext/{key}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/{key}" {{ capabilities = ["update"] }}
"""
    policy = vault.write_policy("stage", grants)
    creds = vault.approle(vault.enable_approle(), "stage", [policy])
    (tmp_path / "plain").write_bytes(b"row,value\n" * 1000)
    with VaultTransitKeyProvider(vault.address, AppRoleAuth(creds.role_id, creds.secret_id, mount=creds.mount),
                                 transit_mount=transit, stage="train") as provider:
        encrypt_file(tmp_path / "plain", tmp_path / "one.pse", provider, key_name=key, context={})
        # an operator revokes the stage's grants while it still holds a valid token
        vault.client().sys.create_or_update_acl_policy(policy, f'path "{transit}/keys/{key}" {{ capabilities = ["read"] }}')
        with pytest.raises(PermissionDeniedError, match=f"{transit}/datakey/plaintext/{key}") as info:
            encrypt_file(tmp_path / "plain", tmp_path / "two.pse", provider, key_name=key, context={})
        with pytest.raises(EnvelopeKeyError, match="permission denied"):
            decrypt_file(tmp_path / "one.pse", tmp_path / "back", provider, context={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.pse", "plain"]
    assert creds.secret_id not in str(info.value)
    reliability(observed=f"{type(info.value).__name__}: {info.value}", bytes_lost=0)
