"""An existing deployment DAG, secured explicitly with pipeshield (diff it against dags/deploy_model.py).

fetch -> deploy -> score: download a registered model version, put it where the scoring job loads
models from, and score the batch waiting in $ML_DATA_DIR/scoring.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from pipeshield.operators.verify_model import VerifyModelOperator

DATA_DIR = Path(os.environ.get("ML_DATA_DIR", "/tmp/ml-data"))
MODEL_NAME = os.environ.get("ML_MODEL_NAME", "churn-classifier")


@dag(
    dag_id="deploy_model_secured",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"model_version": "latest"},
    tags=["ml", "deployment"],
)
def deploy_model():
    fetch = VerifyModelOperator(task_id="fetch", model_name=MODEL_NAME, version="{{ params.model_version }}",
                                dest_dir=str(DATA_DIR / "downloads"))  # downloads, re-hashes, verifies the signature

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

    score(deploy(fetch.output["path"]))  # deploy receives only the verified copy


deploy_model()
