"""``pipeshield keys`` against Vault Transit (the emulator, or a real Vault when configured)."""

from __future__ import annotations

import pytest

from pipeshield.cli import main
from tests.fixtures.vault import VaultServer


def test_keys_cli_on_vault(vault: VaultServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    transit = vault.enable_transit("cli")
    monkeypatch.setenv("PIPESHIELD_VAULT_ADDR", vault.address)
    monkeypatch.setenv("PIPESHIELD_VAULT_TOKEN", vault.root_token)
    monkeypatch.setenv("PIPESHIELD_VAULT_TRANSIT_MOUNT", transit)
    assert main(["keys", "create", "sig", "--type", "ecdsa-p256"]) == 0
    assert main(["keys", "rotate", "sig"]) == 0
    assert "latest v2" in capsys.readouterr().out
    assert main(["keys", "public-key", "sig", "--version", "1"]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN PUBLIC KEY-----")
    assert main(["keys", "list"]) == 0
    assert "sig: ecdsa-p256, latest v2" in capsys.readouterr().out
    assert vault.client().secrets.transit.read_key("sig", mount_point=transit)["data"]["latest_version"] == 2


def test_keys_cli_reports_a_denied_path_in_one_line(vault: VaultServer, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    transit = vault.enable_transit("cli")
    token = vault.token([vault.write_policy("reader", f'path "{transit}/keys/*" {{ capabilities = ["read"] }}')])
    monkeypatch.setenv("PIPESHIELD_VAULT_ADDR", vault.address)
    monkeypatch.setenv("PIPESHIELD_VAULT_TOKEN", token)
    monkeypatch.setenv("PIPESHIELD_VAULT_TRANSIT_MOUNT", transit)
    assert main(["keys", "rotate", "anything"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"pipeshield: error: permission denied: may not rotate on '{transit}/keys/anything/rotate'"
    assert token not in err
