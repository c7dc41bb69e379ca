"""The real components the suite relies on start and answer."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient


def test_mlflow_server_answers(mlflow_server) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment("smoke")
    assert client.get_experiment(experiment_id).name == "smoke"


def test_airflow_db_migrated(airflow_db) -> None:
    assert (airflow_db / "airflow.db").stat().st_size > 0
