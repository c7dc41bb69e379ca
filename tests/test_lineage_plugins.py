"""The MLflow run-context plugin, dataset identity on MLflow inputs, the listener's attributes, and
serving's refusal to load an unverified model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from pipeshield.datasets import sha256_file, table_digest
from pipeshield.lineage import attributes as A
from pipeshield.lineage import lineage_span
from pipeshield.lineage.datasets import identify
from pipeshield.lineage.errors import LineageError, VerifierUnavailableError
from tests.fixtures._lineage_pipeline import write_dataset


def test_run_context_provider_is_registered_and_tags_airflow_ids_and_traceparent(tracing, monkeypatch) -> None:
    from mlflow.tracking.context.registry import resolve_tags

    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "train_dag")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "train_model")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__2026")
    monkeypatch.setenv("PIPESHIELD_STAGE", "train")
    with lineage_span("train") as span:
        tags = resolve_tags()  # what mlflow.start_run applies, through the entry point
        context = span.get_span_context()
    assert tags[A.AIRFLOW_DAG_ID] == "train_dag" and tags[A.AIRFLOW_TASK_ID] == "train_model"
    assert tags[A.AIRFLOW_RUN_ID] == "manual__2026" and tags[A.STAGE] == "train"
    assert tags[A.TAG_TRACEPARENT].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


def test_run_context_provider_stays_out_of_plain_runs(tracing, monkeypatch) -> None:
    from mlflow.tracking.context.registry import resolve_tags

    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    assert not any(key.startswith("pipeshield.") for key in resolve_tags())


def test_log_dataset_records_full_sha256_and_table_digest(mlflow_server, tracing, tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from pipeshield.lineage.datasets import log_dataset

    data = write_dataset(tmp_path / "train.csv")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    experiment = client.create_experiment(f"datasets-{tmp_path.name}")
    with pytest.raises(LineageError, match="active MLflow run"):
        log_dataset(data)
    with mlflow.start_run(experiment_id=experiment) as run:
        identity = log_dataset(data, uri="s3://bucket/train.csv", name="train", targets="y")
    [logged] = client.get_run(run.info.run_id).inputs.dataset_inputs
    tags = {t.key: t.value for t in logged.tags}
    import pandas as pd

    assert tags[A.DATASET_SHA256] == sha256_file(data) == identity.sha256
    assert tags[A.DATASET_TABLE_DIGEST] == table_digest(pd.read_csv(data))
    assert tags[A.DATASET_URI] == "s3://bucket/train.csv" and tags[A.DATASET_ROWS] == "60"
    assert json.loads(logged.dataset.source)["uri"] == "s3://bucket/train.csv"
    [span] = [s for s in tracing.memory.get_finished_spans() if s.name == "pipeshield.dataset.log"]
    assert span.attributes[A.MLFLOW_RUN_ID] == run.info.run_id and span.attributes[A.DATASET_SHA256] == identity.sha256


def test_identify_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LineageError, match="not a readable file"):
        identify(tmp_path / "missing.csv")


def test_serving_refuses_without_a_verifier_before_touching_anything(monkeypatch) -> None:
    from pipeshield.lineage import verify
    from pipeshield.serving import load_verified_model

    monkeypatch.setattr(verify, "VERIFIER_FACTORIES", [])  # no signing layer installed
    assert verify.default_verifier() is None
    with pytest.raises(VerifierUnavailableError, match="refusing to load an unverified model"):
        load_verified_model("models:/anything/1", tracking_uri="http://127.0.0.1:9")


def test_listener_attributes_for_a_task(airflow_db, tracing) -> None:
    from airflow.sdk import DAG, Asset, task

    from pipeshield.plugins import lineage_listener

    with DAG("listener_unit", schedule=None):
        @task(inlets=[Asset("file:///raw.csv")], outlets=[Asset("file:///features.parquet")])
        def fit_model() -> None:
            return None

        operator = fit_model().operator
    instance = SimpleNamespace(task=operator, dag_id="listener_unit", task_id="fit_model", run_id="r1",
                               try_number=2, get_template_context=dict)
    attributes = lineage_listener.task_attributes(instance)
    assert attributes == {
        A.STAGE: "train", A.AIRFLOW_DAG_ID: "listener_unit", A.AIRFLOW_TASK_ID: "fit_model",
        A.AIRFLOW_RUN_ID: "r1", A.AIRFLOW_TRY_NUMBER: 2,
        A.INLETS: ["file:///raw.csv"], A.OUTLETS: ["file:///features.parquet"],
    }
    with DAG("listener_marker", schedule=None):
        @task(params={"pipeshield_stage": "deploy"})
        def push() -> None:
            return None

        marked = push().operator
    assert lineage_listener.stage_of(marked) == "deploy"
    orm_like = SimpleNamespace(task=None, dag_id="d", task_id="t", run_id="r", try_number=1)
    lineage_listener.on_task_instance_running(previous_state=None, task_instance=orm_like)  # ignored, no error
