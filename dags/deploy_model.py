"""An existing deployment DAG, written the way a team writes it without pipeshield.

fetch -> deploy -> score: download a registered model version, put it where the scoring job loads
models from, and score the batch waiting in $ML_DATA_DIR/scoring.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

DATA_DIR = Path(os.environ.get("ML_DATA_DIR", "/tmp/ml-data"))
MODEL_NAME = os.environ.get("ML_MODEL_NAME", "churn-classifier")


@dag(
    dag_id="deploy_model",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"model_version": "latest"},
    tags=["ml", "deployment"],
)
def deploy_model():
    @task
    def fetch(params: dict | None = None) -> str:
        """Download the requested model version from the registry."""
        import mlflow

        version = (params or {}).get("model_version", "latest")
        target = DATA_DIR / "downloads" / str(version)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        return mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{version}", dst_path=str(target))

    @task
    def deploy(model_dir: str) -> str:
        """Copy the model into the serving location."""
        serving = DATA_DIR / "serving" / MODEL_NAME
        shutil.rmtree(serving, ignore_errors=True)
        shutil.copytree(model_dir, serving)
        return str(serving)

    @task
    def score(serving_dir: str) -> str:
        """Score the waiting batch with the deployed model."""
        import mlflow
        import pandas as pd

        model = mlflow.pyfunc.load_model(serving_dir)
        batch = pd.read_csv(DATA_DIR / "scoring" / "batch.csv")
        predictions = batch.assign(prediction=model.predict(batch))
        output = DATA_DIR / "scoring" / "predictions.csv"
        predictions.to_csv(output, index=False)
        return str(output)

    score(deploy(fetch()))


deploy_model()
