"""``MlflowHook``: tracking URI from an Airflow connection or pipeshield settings; signed registration with
the register stage's key provider (real ``mlflow server`` with the signed store)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from pipeshield.errors import ConfigError
from pipeshield.hooks.mlflow import MlflowHook
from tests.fixtures.signed_registry import log_test_model


def test_tracking_uri_from_connection_host_and_port(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_A", json.dumps({"conn_type": "pipeshield_mlflow", "host": "mlflow.internal",
                                                            "port": 5000, "schema": "https"}))
    assert MlflowHook("mlflow_a").get_tracking_uri() == "https://mlflow.internal:5000"


def test_tracking_uri_from_connection_extra(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_B", json.dumps({"conn_type": "pipeshield_mlflow", "host": "ignored",
                                                            "extra": {"tracking_uri": "http://10.0.0.5:80/mlflow"}}))
    assert MlflowHook("mlflow_b").get_tracking_uri() == "http://10.0.0.5:80/mlflow"


def test_tracking_uri_falls_back_to_settings(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="PIPESHIELD_MLFLOW_TRACKING_URI"):
        MlflowHook().get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert MlflowHook().get_tracking_uri() == "http://127.0.0.1:5999"


def test_register_and_verify_through_the_hook(signed_registry, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PIPESHIELD_MLFLOW_TRACKING_URI", signed_registry.url)
    monkeypatch.setenv("PIPESHIELD_KEYRING_DIR", str(signed_registry.keyring_dir))
    monkeypatch.setenv("PIPESHIELD_MASTER_KEY", base64.b64encode(signed_registry.master_key).decode())
    hook = MlflowHook()
    model_uri, run_id = log_test_model(hook.get_conn())
    name = f"hooked-{uuid.uuid4().hex[:8]}"
    mv = hook.register_signed_model(model_uri, name)
    assert mv.version == "1" and mv.run_id == run_id
    verified = hook.verify_model_version(name, alias=None, version=mv.version, dest_dir=tmp_path)
    assert verified.run_id == run_id and verified.key_name == signed_registry.key_name
