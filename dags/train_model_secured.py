"""An existing training DAG, secured explicitly with pipeshield (diff it against dags/train_model.py).

extract -> train -> register: the incoming batch lands as CSV in $ML_DATA_DIR/landing, is copied
into a versioned snapshot, a scikit-learn model is trained on it and logged to MLflow, and the
model is registered in the MLflow model registry.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pendulum
from airflow.sdk import Asset, dag, task

from pipeshield.lineage import lineage_span
from pipeshield.lineage.datasets import log_dataset
from pipeshield.operators.data_gate import DataGateOperator
from pipeshield.operators.register_signed_model import RegisterSignedModelOperator

DATA_DIR = Path(os.environ.get("ML_DATA_DIR", "/tmp/ml-data"))
MODEL_NAME = os.environ.get("ML_MODEL_NAME", "churn-classifier")
TRAINING_DATA = Asset(f"file://{DATA_DIR}/snapshots/train.csv")


@dag(
    dag_id="train_model_secured",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ml", "training"],
)
def train_model():
    @task(outlets=[TRAINING_DATA])
    def extract() -> str:
        """Copy the landed batch into the snapshot the model trains on."""
        snapshot = DATA_DIR / "snapshots" / "train.csv"
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA_DIR / "landing" / "batch.csv", snapshot)
        return str(snapshot)

    @task(inlets=[TRAINING_DATA])
    def train(snapshot: str) -> str:
        """Fit a classifier on the snapshot and log it to MLflow; returns the model URI."""
        import mlflow
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        frame = pd.read_csv(snapshot)
        features, labels = frame.drop(columns=["label"]), frame["label"]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
        mlflow.set_experiment("train_model")
        with lineage_span("train"), mlflow.start_run() as run:
            log_dataset(snapshot, name="train", targets="label")
            mlflow.log_metric("train_accuracy", model.score(features, labels))
            info = mlflow.sklearn.log_model(model, name="model", input_example=features.head(3))
        return info.model_uri

    snapshot = extract()
    gate = DataGateOperator(task_id="gate", data=snapshot, reference=str(DATA_DIR / "approved" / "train.csv"))
    model_uri = train(snapshot)
    gate >> model_uri
    RegisterSignedModelOperator(task_id="register", model_uri=model_uri, model_name=MODEL_NAME, gate_result=gate.output)


train_model()
