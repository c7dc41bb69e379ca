"""``KeyProviderHook``: the key provider for an operator, resolved the Airflow way.

A connection (default id ``pipeshield_vault_default``, type ``pipeshield_vault``) names a Vault:
host/port/schema give the address; extra the auth method and its fields (``auth``, ``role``,
``role_id``, ``secret_id_file``, ``jwt_file``, ``auth_mount``, ``transit_mount``, ``namespace``).
The password is the token for ``token`` auth (the default) and the secret id for ``approle``, whose
role id may also be the login (as in Airflow's HashiCorp provider). When the connection does not
exist, pipeshield's own settings apply (``PIPESHIELD_*``; local keyring by default).

With ``stage=...`` the hook acts as that pipeline stage: it logs in to Vault with the stage's own
credentials (``PIPESHIELD_STAGE_<STAGE>_*`` variables, or the connection extra
``{"stages": {"<stage>": {...}}}``; else the connection's own AppRole/Kubernetes/JWT login, refused if
its token holds another stage's policy; see :mod:`pipeshield.stages`), never with a shared token. One login per stage and process, renewed when due; the cluster policy
revokes the token when the task ends.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from pipeshield.config import Settings
from pipeshield.keys import KeyProvider
from pipeshield.stages import configured_manifest, open_stage_provider, stage_settings

_EXTRA_FIELDS = ("auth", "role", "role_id", "secret_id_file", "jwt_file", "auth_mount", "transit_mount", "namespace")


class KeyProviderHook(BaseHook):
    """Builds the :class:`~pipeshield.keys.KeyProvider` an operator should use."""

    conn_name_attr = "vault_conn_id"
    default_conn_name = "pipeshield_vault_default"
    conn_type = "pipeshield_vault"
    hook_name = "pipeshield Vault"

    def __init__(self, vault_conn_id: str = default_conn_name, stage: str | None = None) -> None:
        super().__init__()
        self.vault_conn_id = vault_conn_id
        self.stage = stage

    def get_settings(self) -> Settings:
        """Settings from the connection when it exists, else from ``PIPESHIELD_*``; narrowed to the stage."""
        settings, per_stage = self._base_settings()
        stage = self.stage or settings.stage
        if not stage:
            return settings
        return stage_settings(settings, stage, configured_manifest(), extras=per_stage.get(stage))

    def _base_settings(self) -> tuple[Settings, dict[str, Any]]:
        settings = Settings.load()
        try:
            conn = self.get_connection(self.vault_conn_id)
        except AirflowNotFoundException:
            return dataclasses.replace(settings, stage=self.stage or settings.stage), {}
        scheme = conn.schema or "http"
        address = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        extra: dict[str, Any] = conn.extra_dejson
        updates: dict[str, Any] = {"key_provider": "vault", "vault_addr": address, "stage": self.stage or settings.stage}
        approle = str(extra.get("auth", "token")).lower() == "approle"
        if conn.password:
            updates["vault_secret_id" if approle else "vault_token"] = conn.password
        if conn.login and approle:
            updates["vault_role_id"] = conn.login
        for field in _EXTRA_FIELDS:
            if field in extra:
                updates[f"vault_{field}"] = extra[field]
        merged = settings.updated(**{name: value for name, value in updates.items() if value is not None})
        return merged, dict(extra.get("stages") or {})

    def get_provider(self) -> KeyProvider:
        """The key provider; for a stage, its cached Vault session (``close()`` keeps it until the task ends)."""
        settings = self.get_settings()
        return open_stage_provider(settings, configured_manifest() if settings.stage else None)

    def get_conn(self) -> KeyProvider:
        return self.get_provider()
