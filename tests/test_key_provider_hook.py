import json

import pytest

from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.keys import LocalKeyProvider


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
