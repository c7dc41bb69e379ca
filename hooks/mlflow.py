"""``MlflowHook``: the MLflow tracking server for an operator, resolved the Airflow way, and signed registration.

A connection (default id ``pipeshield_mlflow_default``, type ``pipeshield_mlflow``) names the server:
``host`` a full URL (``http://mlflow:5000``) or a host name with ``schema``/``port``; extra
``tracking_uri`` overrides both. When the connection does not exist, ``PIPESHIELD_MLFLOW_TRACKING_URI``
or ``MLFLOW_TRACKING_URI`` applies. The tracking URI is passed to each client; the hook never calls
``mlflow.set_tracking_uri`` (that would reset MLflow's tracer provider inside a task).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from pipeshield.config import Settings
from pipeshield.errors import ConfigError
from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.keys import KeyProvider
from pipeshield.registry import VerifiedModel, register_signed_model, trusted_keys, verify_registered_model
from pipeshield.signing import ArtifactDigest, ModelBindings, TrustedKeys


class MlflowHook(BaseHook):
    """MLflow client for pipeshield operators; signs at registration and verifies at deploy."""

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "pipeshield_mlflow_default"
    conn_type = "pipeshield_mlflow"
    hook_name = "pipeshield MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name,
                 vault_conn_id: str = KeyProviderHook.default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self.vault_conn_id = vault_conn_id

    def get_tracking_uri(self) -> str:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            uri = Settings.load().mlflow_tracking_uri
            if not uri:
                raise ConfigError("PIPESHIELD_MLFLOW_TRACKING_URI",
                                  f"no connection {self.mlflow_conn_id!r} and no MLflow tracking URI set") from None
            return uri
        extra: dict[str, Any] = conn.extra_dejson
        if extra.get("tracking_uri"):
            return str(extra["tracking_uri"])
        host = conn.host or ""
        if "://" in host:
            return host.rstrip("/")
        if not host:
            raise ConfigError(self.mlflow_conn_id, "the MLflow connection has no host")
        return f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")

    def get_conn(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.get_tracking_uri())

    def register_signed_model(self, model_uri: str, name: str, *,
                              datasets: Iterable[ArtifactDigest | Mapping[str, str]] = (),
                              gate_reports: Iterable[ArtifactDigest | Mapping[str, str]] = (),
                              provider: KeyProvider | None = None, key_name: str | None = None,
                              **kwargs: Any) -> ModelVersion:
        """:func:`pipeshield.registry.register_signed_model` with the ``register`` stage's key provider."""
        key_hook = KeyProviderHook(self.vault_conn_id, stage="register")
        settings = key_hook.get_settings()
        opened = provider is None
        provider = provider or key_hook.get_provider()
        try:
            return register_signed_model(model_uri, name, datasets=datasets, gate_reports=gate_reports,
                                         provider=provider, key_name=key_name or settings.signing_key,
                                         client=self.get_conn(), settings=settings, **kwargs)
        finally:
            if opened:
                provider.close()

    def verify_model_version(self, name: str, version: str | int | None = None, *, alias: str | None = None,
                             expected: ModelBindings | None = None, keys: TrustedKeys | None = None,
                             key_name: str | None = None, **kwargs: Any) -> VerifiedModel:
        """:func:`pipeshield.registry.verify_registered_model` with the ``deploy`` stage's trusted keys."""
        settings = KeyProviderHook(self.vault_conn_id, stage="deploy").get_settings()
        keys = keys or trusted_keys(settings, key_name=key_name)
        return verify_registered_model(name, version, alias=alias, keys=keys, client=self.get_conn(),
                                       expected=expected, settings=settings, **kwargs)
