from pathlib import Path

import pytest

from pipeshield.config import Settings, settings_table
from pipeshield.errors import ConfigError


def test_defaults_use_local_provider_under_home(tmp_path: Path) -> None:
    settings = Settings.load({"PIPESHIELD_HOME": str(tmp_path)})
    assert settings.key_provider == "local"
    assert settings.keyring_dir == tmp_path / "keyring"
    assert settings.master_key_file == tmp_path / "master.key"


def test_vault_address_selects_vault_provider() -> None:
    settings = Settings.load({"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "t"})
    assert settings.key_provider == "vault"
    assert settings.vault_token == "t"


def test_environment_beats_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "pipeshield.toml"
    config.write_text('[pipeshield]\nvault_timeout = 9\nwrapping_key = "from-file"\n')
    settings = Settings.load({"PIPESHIELD_CONFIG": str(config), "PIPESHIELD_VAULT_TIMEOUT": "2.5"})
    assert settings.vault_timeout == 2.5
    assert settings.wrapping_key == "from-file"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PIPESHIELD_VAULT_TIMEOUT": "abc"}, "PIPESHIELD_VAULT_TIMEOUT"),
        ({"PIPESHIELD_VAULT_RETRIES": "-1"}, "PIPESHIELD_VAULT_RETRIES"),
        ({"PIPESHIELD_KEY_PROVIDER": "kms"}, "PIPESHIELD_KEY_PROVIDER"),
        ({"PIPESHIELD_VAULT_AUTH": "ldap"}, "PIPESHIELD_VAULT_AUTH"),
        ({"PIPESHIELD_VAULT_VERIFY": "maybe"}, "PIPESHIELD_VAULT_VERIFY"),
        ({"PIPESHIELD_KEY_PROVIDER": "vault"}, "PIPESHIELD_VAULT_ADDR"),
        ({"PIPESHIELD_CONFIG": "/nonexistent/pipeshield.toml"}, "PIPESHIELD_CONFIG"),
    ],
)
def test_invalid_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.load(env)
    assert excinfo.value.setting == named
    assert named in str(excinfo.value)


def test_unknown_and_invalid_file_settings_are_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("vault_tiemout = 3\n")
    with pytest.raises(ConfigError, match="vault_tiemout"):
        Settings.load({}, config_file=config)
    config.write_text('vault_retries = "many"\n')
    with pytest.raises(ConfigError, match="vault_retries"):
        Settings.load({}, config_file=config)


def test_secrets_never_appear_in_repr() -> None:
    settings = Settings.load({"PIPESHIELD_VAULT_TOKEN": "hvs.supersecret", "PIPESHIELD_VAULT_SECRET_ID": "sid-123"})
    text = repr(settings) + str(settings.redacted())
    assert "hvs.supersecret" not in text and "sid-123" not in text


def test_settings_table_documents_every_setting() -> None:
    names = [row[0] for row in settings_table()]
    assert "PIPESHIELD_MASTER_KEY" in names and "PIPESHIELD_VAULT_ADDR" in names
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [name for name in names if name not in readme]
    assert not missing, f"settings missing from README: {missing}"


def test_updated_validates_like_the_environment_and_keeps_lists() -> None:
    settings = Settings.load({"PIPESHIELD_PROTECTED_ALIASES": "champion,prod"})
    copy = settings.updated(vault_addr="http://127.0.0.1:8200", key_provider="vault", vault_timeout="2")
    assert copy.vault_timeout == 2.0 and copy.key_provider == "vault"
    assert copy.protected_aliases == ("champion", "prod")
    with pytest.raises(ConfigError, match="PIPESHIELD_VAULT_RETRIES"):
        settings.updated(vault_retries="many")
    with pytest.raises(ConfigError, match="PIPESHIELD_NO_SUCH"):
        settings.updated(no_such="x")
