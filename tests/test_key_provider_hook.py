import json

import pytest

from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.keys import LocalKeyProvider
from pipeshield.stages import StageKeyProvider
from tests.fixtures.vault import VaultServer


def test_without_connection_uses_pipeshield_settings() -> None:
    hook = KeyProviderHook(stage="train")
    settings = hook.get_settings()
    assert settings.key_provider == "local" and settings.stage == "train"
    assert isinstance(hook.get_provider(), LocalKeyProvider)


def test_connection_selects_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "pipeshield_vault", "host": "vault.internal", "port": 8200, "schema": "https",
            "password": "hvs.token", "extra": {"auth": "approle", "role_id": "rid", "transit_mount": "ml-transit"}}
    monkeypatch.setenv("AIRFLOW_CONN_PIPESHIELD_VAULT_DEFAULT", json.dumps(conn))
    settings = KeyProviderHook().get_settings()
    assert settings.key_provider == "vault"
    assert settings.vault_addr == "https://vault.internal:8200"
    assert settings.vault_auth == "approle" and settings.vault_role_id == "rid"
    assert settings.vault_transit_mount == "ml-transit"
    assert "hvs.token" not in repr(settings)


def test_connection_keeps_the_other_settings_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "pipeshield_vault", "host": "vault.internal", "password": "hvs.token"}
    monkeypatch.setenv("AIRFLOW_CONN_PIPESHIELD_VAULT_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("PIPESHIELD_PROTECTED_ALIASES", "champion,prod")
    monkeypatch.setenv("PIPESHIELD_VAULT_TIMEOUT", "2.5")
    settings = KeyProviderHook().get_settings()
    assert settings.protected_aliases == ("champion", "prod")
    assert settings.vault_timeout == 2.5 and settings.vault_addr == "http://vault.internal"


def test_connection_to_the_emulator_yields_a_working_vault_provider(
    monkeypatch: pytest.MonkeyPatch, vault: VaultServer
) -> None:
    transit = vault.enable_transit("hook")
    key = vault.unique("hook")
    vault.client().secrets.transit.create_key(key, mount_point=transit)
    policy = vault.write_policy("hook", f"""
path "{transit}/keys/{key}" {{ capabilities = ["read"] }}
path "{transit}/datakey/plaintext/{key}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/{key}" {{ capabilities = ["update"] }}
""")
    creds = vault.approle(vault.enable_approle(), "airflow-task", [policy])
    monkeypatch.setenv("AIRFLOW_CONN_PIPESHIELD_VAULT_DEFAULT", vault.airflow_connection(creds, transit))
    with KeyProviderHook(stage="train").get_provider() as provider:
        assert isinstance(provider, StageKeyProvider) and provider.stage == "train"  # a stage session (stages merge)
        data_key = provider.generate_data_key(key)
        assert provider.unwrap(key, data_key.wrapped) == data_key.plaintext
        assert creds.secret_id not in repr(provider)
