"""One settings object, read from ``PIPESHIELD_*`` environment variables and an optional TOML file.

Precedence: environment variable > TOML file (``PIPESHIELD_CONFIG`` or ``./pipeshield.toml``)
> default. In the TOML file each setting is written without the prefix, in lower case, either at
the top level or under a ``[pipeshield]`` table::

    key_provider = "vault"
    vault_addr = "https://vault.internal:8200"
    vault_auth = "approle"

An invalid value raises :class:`~pipeshield.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeshield.errors import ConfigError

PREFIX = "PIPESHIELD_"

KEY_PROVIDERS = ("local", "vault")
VAULT_AUTH_METHODS = ("token", "approle", "kubernetes", "jwt")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return _text(value) or None


def _path(value: Any) -> Path:
    return Path(_text(value)).expanduser()


def _optional_path(value: Any) -> Path | None:
    return _path(value) if value else None


def _positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a positive number, got {value!r}") from None
    if not number > 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _non_negative_int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number >= 0, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _optional_one_of(*choices: str) -> Callable[[Any], str | None]:
    parse = _one_of(*choices)
    return lambda value: parse(value) if value else None


def _names(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else _text(value).split(",")
    return tuple(sorted({_text(item).strip() for item in items if _text(item).strip()}))


def _setting(default: Any, parse: Callable[[Any], Any], doc: str, *, secret: bool = False) -> Any:
    return dataclasses.field(
        default=default, metadata={"parse": parse, "doc": doc, "secret": secret}
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """All pipeshield settings. Build it with :meth:`Settings.load`."""

    home: Path = _setting(
        Path("~/.pipeshield").expanduser(), _path, "Directory for the local keyring, ledger and reports."
    )
    key_provider: str | None = _setting(
        None, _optional_one_of(*KEY_PROVIDERS),
        "`local` or `vault`. Default: `vault` when a Vault address is set, else `local`.",
    )
    keyring_dir: Path | None = _setting(None, _optional_path, "Local keyring directory. Default: `<home>/keyring`.")
    master_key: str | None = _setting(
        None, _optional_text,
        "Base64 of the 32-byte master key that encrypts the local keyring at rest.", secret=True,
    )
    master_key_file: Path | None = _setting(
        None, _optional_path,
        "File holding the master key (generated on first use). Default: `<home>/master.key`.",
    )
    vault_addr: str | None = _setting(None, _optional_text, "Vault address; falls back to `VAULT_ADDR`.")
    vault_namespace: str | None = _setting(None, _optional_text, "Vault namespace (Enterprise/OpenBao).")
    vault_auth: str = _setting("token", _one_of(*VAULT_AUTH_METHODS), "`token`, `approle`, `kubernetes` or `jwt`.")
    vault_token: str | None = _setting(
        None, _optional_text, "Vault token for `token` auth; falls back to `VAULT_TOKEN`.", secret=True
    )
    vault_role: str | None = _setting(None, _optional_text, "Role for Kubernetes/JWT auth.")
    vault_role_id: str | None = _setting(None, _optional_text, "AppRole role id.")
    vault_secret_id: str | None = _setting(None, _optional_text, "AppRole secret id.", secret=True)
    vault_secret_id_file: Path | None = _setting(None, _optional_path, "File holding the AppRole secret id.")
    vault_jwt_file: Path | None = _setting(
        None, _optional_path,
        "JWT for Kubernetes/JWT auth. Default for `kubernetes`: the pod's service-account token.",
    )
    vault_auth_mount: str | None = _setting(None, _optional_text, "Auth mount path. Default: the method name.")
    vault_transit_mount: str = _setting("transit", _text, "Transit secrets engine mount path.")
    vault_timeout: float = _setting(5.0, _positive_float, "Seconds before one Vault request times out.")
    vault_retries: int = _setting(3, _non_negative_int, "Retries on 5xx and connection errors (with backoff).")
    vault_verify: bool = _setting(True, _bool, "Verify Vault's TLS certificate.")
    wrapping_key: str = _setting("pipeshield-data", _text, "Transit key that wraps data keys.")
    signing_key: str = _setting("pipeshield-signing", _text, "Transit key (ECDSA P-256) that signs models.")
    mlflow_tracking_uri: str | None = _setting(None, _optional_text, "MLflow tracking URI; falls back to `MLFLOW_TRACKING_URI`.")
    stage: str | None = _setting(None, _optional_text, "Pipeline stage this process acts as.")
    ledger_url: str | None = _setting(
        None, _optional_text, "Lineage ledger store (SQLAlchemy URL), or `off`. Default: SQLite `<home>/lineage.db`.",
        secret=True,  # a URL may carry a database password
    )
    gate_on_flag: str = _setting(
        "fail", _one_of("fail", "quarantine", "warn"),
        "Data gate action on a flagged batch: `fail`, `quarantine` (train on the clean rows) or `warn`.",
    )
    gate_label_column: str = _setting("label", _text, "Label column the data gate's poisoning checks use.")
    gate_train_operators: tuple[str, ...] = _setting(
        (), _names,
        "Comma-separated operator class names (or dotted paths) the gate policy treats as training tasks.",
    )
    trusted_keys_dir: Path | None = _setting(
        None, _optional_path,
        "Public keys `<key>.v<N>.pem` trusted by verifiers without key-provider access (MLflow server, deploy gate).",
    )
    protected_aliases: tuple[str, ...] = _setting(
        ("champion",), _names, "Comma-separated registry aliases that may point only at verified model versions.",
    )
    gate_train_tags: tuple[str, ...] = _setting(
        (), _names, "Comma-separated DAG tags: in a DAG with one of them, the gate policy gates every task with inlets.",
    )
    verify_deploy_tags: tuple[str, ...] = _setting(
        (), _names,
        "Comma-separated DAG tags: in a DAG with one of them, the verify policy checks the model every task "
        "whose id names `deploy` receives.",
    )
    verify_deploy_operators: tuple[str, ...] = _setting(
        (), _names,
        "Comma-separated operator class names (or dotted paths) the verify policy treats as deploy tasks.",
    )

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, config_file: str | os.PathLike[str] | None = None
    ) -> Settings:
        """Read settings from the environment and the optional TOML file, validating every value."""
        env = os.environ if environ is None else environ
        file_values = _read_toml(config_file, env)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            env_name = PREFIX + field.name.upper()
            if env_name in env:
                raw, source = env[env_name], env_name
            elif field.name in file_values:
                raw, source = file_values[field.name], f"{field.name} (in config file)"
            else:
                continue
            try:
                values[field.name] = field.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(source, str(exc)) from None
        unknown = set(file_values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(", ".join(sorted(unknown)), "unknown setting in config file")
        settings = cls(**values)
        return settings._with_fallbacks(env)

    def updated(self, **raw: Any) -> Settings:
        """A copy with some settings replaced; each value is validated as its environment variable would be."""
        fields = {field.name: field for field in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in fields:
                raise ConfigError(PREFIX + name.upper(), "unknown setting")
            try:
                values[name] = fields[name].metadata["parse"](value)
            except ValueError as exc:
                raise ConfigError(PREFIX + name.upper(), str(exc)) from None
        return dataclasses.replace(self, **values)._with_fallbacks({})

    def _with_fallbacks(self, env: Mapping[str, str]) -> Settings:
        updates: dict[str, Any] = {}
        if self.vault_addr is None and env.get("VAULT_ADDR"):
            updates["vault_addr"] = env["VAULT_ADDR"]
        if self.vault_token is None and env.get("VAULT_TOKEN"):
            updates["vault_token"] = env["VAULT_TOKEN"]
        if self.mlflow_tracking_uri is None and env.get("MLFLOW_TRACKING_URI"):
            updates["mlflow_tracking_uri"] = env["MLFLOW_TRACKING_URI"]
        if self.keyring_dir is None:
            updates["keyring_dir"] = self.home / "keyring"
        if self.master_key_file is None:
            updates["master_key_file"] = self.home / "master.key"
        resolved = dataclasses.replace(self, **updates)
        if resolved.key_provider is None:
            provider = "vault" if resolved.vault_addr else "local"
            resolved = dataclasses.replace(resolved, key_provider=provider)
        if resolved.key_provider == "vault" and not resolved.vault_addr:
            raise ConfigError(PREFIX + "VAULT_ADDR", "required when PIPESHIELD_KEY_PROVIDER is vault")
        return resolved

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced by ``'***'`` (safe to log)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.metadata["secret"] and value is not None:
                value = "***"
            out[field.name] = str(value) if isinstance(value, Path) else value
        return out

    def __repr__(self) -> str:  # never print secrets by accident
        return f"Settings({self.redacted()!r})"


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for docs and ``--help``."""
    return [
        (PREFIX + f.name.upper(), "" if f.default is None else str(f.default), f.metadata["doc"])
        for f in dataclasses.fields(Settings)
    ]


def _read_toml(config_file: str | os.PathLike[str] | None, env: Mapping[str, str]) -> dict[str, Any]:
    explicit = config_file or env.get(PREFIX + "CONFIG")
    path = Path(explicit) if explicit else Path("pipeshield.toml")
    if not path.exists():
        if explicit:
            raise ConfigError(PREFIX + "CONFIG", f"config file {str(path)!r} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(PREFIX + "CONFIG", f"cannot read {str(path)!r}: {exc}") from None
    table = data.get("pipeshield", data)
    if not isinstance(table, dict):
        raise ConfigError(PREFIX + "CONFIG", "[pipeshield] must be a table")
    return dict(table)
