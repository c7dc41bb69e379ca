"""``get_provider_info`` for the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from pipeshield import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "pipeshield",
        "name": "pipeshield",
        "description": "Security layer for ML pipelines: data gates, Vault envelope encryption, "
        "per-stage identity, signed MLflow models and lineage.",
        "versions": [__version__],
        "connection-types": [
            {"connection-type": "pipeshield_vault", "hook-class-name": "pipeshield.hooks.keys.KeyProviderHook"},
            {"connection-type": "pipeshield_mlflow", "hook-class-name": "pipeshield.hooks.mlflow.MlflowHook"},
        ],
    }
