"""Per-stage Vault credentials: which identity a process uses when it acts as a stage.

For stage ``train`` the variables are ``PIPESHIELD_STAGE_TRAIN_<FIELD>`` (upper case, ``-`` → ``_``):

* ``AUTH``: ``approle``, ``kubernetes``, ``jwt`` or ``token`` (default: inferred from the fields set);
* ``ROLE_ID``, ``SECRET_ID`` or ``SECRET_ID_FILE`` for AppRole;
* ``ROLE`` and ``JWT_FILE`` for Kubernetes/JWT (default role: the manifest's; default JWT: the pod's
  service-account token);
* ``TOKEN_FILE`` for a per-stage token written by a Vault Agent sink;
* ``AUTH_MOUNT`` (default: the manifest's mount for the method).

The same fields may come from an Airflow connection's extra ``{"stages": {"train": {...}}}``;
environment variables win. Without stage fields, a process-wide *login* (``PIPESHIELD_VAULT_AUTH`` or
the connection's ``approle``/``kubernetes``/``jwt``: a worker pool serving one stage's queue) is the
stage's identity, and the session refuses it when its token carries another stage's policy. A token
is never shared: with only ``PIPESHIELD_VAULT_TOKEN`` / ``VAULT_TOKEN`` (or a connection password
used as token) a stage has no identity and pipeshield stops with an error.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeshield.config import Settings
from pipeshield.errors import ConfigError, StageCredentialsError
from pipeshield.stages._manifest import Stage, StageManifest

FIELDS = ("auth", "role_id", "secret_id", "secret_id_file", "role", "jwt_file", "token_file", "auth_mount")
_AUTH_METHODS = ("approle", "kubernetes", "jwt", "token")
_LOGIN_METHODS = ("approle", "kubernetes", "jwt")

# every credential setting, cleared before a stage's own credentials are filled in
_CREDENTIAL_FIELDS = ("vault_token", "vault_role", "vault_role_id", "vault_secret_id", "vault_secret_id_file",
                      "vault_jwt_file", "vault_auth_mount")


def env_prefix(stage: str) -> str:
    """``PIPESHIELD_STAGE_TRAIN_`` for stage ``train``."""
    return "PIPESHIELD_STAGE_" + re.sub(r"[^A-Z0-9]", "_", stage.upper()) + "_"


def stage_credentials(stage: str, environ: Mapping[str, str] | None = None,
                      extras: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The stage's credential fields from connection extras, overridden by environment variables."""
    env = os.environ if environ is None else environ
    values = {k: str(v) for k, v in (extras or {}).items() if v is not None and v != ""}
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ConfigError(f"stages.{stage}", f"unknown credential field(s): {', '.join(sorted(unknown))}")
    prefix = env_prefix(stage)
    for field in FIELDS:
        if env.get(prefix + field.upper()):
            values[field] = env[prefix + field.upper()]
    return values


def stage_settings(base: Settings, stage: str, manifest: StageManifest | None = None,
                   environ: Mapping[str, str] | None = None,
                   extras: Mapping[str, Any] | None = None) -> Settings:
    """``base`` turned into the settings of ``stage``: its own Vault identity, never the shared token.

    With the local key provider there is no identity to select and only ``stage`` changes.
    """
    spec = manifest.stage(stage) if manifest is not None else None
    if base.key_provider != "vault":
        return dataclasses.replace(base, stage=stage)
    values = stage_credentials(stage, environ, extras)
    prefix = env_prefix(stage)
    auth = values.get("auth") or _infer_auth(values)
    if auth is None and base.vault_auth in _LOGIN_METHODS:
        return _worker_identity(base, stage, spec)
    if auth not in _AUTH_METHODS:
        raise StageCredentialsError(
            f"stage {stage!r} has no Vault credentials of its own: set {prefix}ROLE_ID and "
            f"{prefix}SECRET_ID_FILE (AppRole), {prefix}AUTH=kubernetes (pod service account) or "
            f"{prefix}TOKEN_FILE (Vault Agent); pipeshield never uses a shared token for a stage"
            if auth is None else f"{prefix}AUTH: expected one of {', '.join(_AUTH_METHODS)}, got {auth!r}"
        )
    updates: dict[str, Any] = {"stage": stage, "vault_auth": auth, **dict.fromkeys(_CREDENTIAL_FIELDS)}
    if auth == "approle":
        if "role_id" not in values or not ({"secret_id", "secret_id_file"} & set(values)):
            raise StageCredentialsError(f"stage {stage!r}: AppRole needs {prefix}ROLE_ID and {prefix}SECRET_ID_FILE "
                                        f"(or {prefix}SECRET_ID)")
        updates.update(vault_role_id=values["role_id"], vault_secret_id=values.get("secret_id"),
                       vault_secret_id_file=_path(values.get("secret_id_file")))
    elif auth in ("kubernetes", "jwt"):
        default_role = spec.kubernetes.role if spec is not None and spec.kubernetes is not None else None
        role = values.get("role") or default_role
        if role is None:
            raise StageCredentialsError(f"stage {stage!r}: {auth} auth needs {prefix}ROLE")
        updates.update(vault_role=role, vault_jwt_file=_path(values.get("jwt_file")))
    else:
        updates["vault_token"] = _read_token(stage, values.get("token_file"), prefix)
    mount = values.get("auth_mount") or _default_mount(manifest, auth)
    updates["vault_auth_mount"] = mount
    return dataclasses.replace(base, **updates)


def _worker_identity(base: Settings, stage: str, spec: Stage | None) -> Settings:
    """The process-wide login (e.g. a Celery worker pool that serves one stage's queue), kept as the
    stage's identity; the session refuses it if its token carries another stage's policy."""
    updates: dict[str, Any] = {"stage": stage, **dict.fromkeys(("vault_token",))}
    if base.vault_auth == "kubernetes" and not base.vault_role and spec is not None and spec.kubernetes is not None:
        updates["vault_role"] = spec.kubernetes.role
    return dataclasses.replace(base, **updates)


def _infer_auth(values: Mapping[str, str]) -> str | None:
    if "role_id" in values:
        return "approle"
    if "token_file" in values:
        return "token"
    if "role" in values or "jwt_file" in values:
        return "kubernetes"
    return None


def _default_mount(manifest: StageManifest | None, auth: str) -> str | None:
    if manifest is None:
        return None
    return {"approle": manifest.vault.approle_mount, "kubernetes": manifest.vault.kubernetes_mount}.get(auth)


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _read_token(stage: str, token_file: str | None, prefix: str) -> str:
    if not token_file:
        raise StageCredentialsError(f"stage {stage!r}: token auth needs {prefix}TOKEN_FILE")
    try:
        token = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StageCredentialsError(f"stage {stage!r}: cannot read {prefix}TOKEN_FILE: {exc.strerror}") from None
    if not token:
        raise StageCredentialsError(f"stage {stage!r}: {prefix}TOKEN_FILE is empty")
    return token
