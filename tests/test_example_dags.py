"""The example "existing" DAGs (written without pipeshield) load and run against real MLflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from tests.fixtures.airflow_env import load_dagbag

DAGS = Path(__file__).resolve().parent.parent / "dags"


@pytest.fixture
def landed_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_server) -> Path:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    (tmp_path / "landing").mkdir()
    (tmp_path / "scoring").mkdir()
    frame.to_csv(tmp_path / "landing" / "batch.csv", index=False)
    frame.drop(columns=["label"]).head(20).to_csv(tmp_path / "scoring" / "batch.csv", index=False)
    monkeypatch.setenv("ML_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ML_MODEL_NAME", f"example-{tmp_path.name}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return tmp_path


def test_existing_dags_train_and_deploy(dags_folder: Path, landed_batch: Path) -> None:
    for name in ("train_model.py", "deploy_model.py"):
        shutil.copy(DAGS / name, dags_folder / name)
    bag = load_dagbag(dags_folder)
    train = bag.dags["train_model"]
    assert train.test().state == "success"
    deploy = bag.dags["deploy_model"]
    assert deploy.test(run_conf={"model_version": "1"}).state == "success"
    predictions = pd.read_csv(landed_batch / "scoring" / "predictions.csv")
    assert len(predictions) == 20 and set(predictions["prediction"]) <= {0, 1}


def test_untouched_training_dag_gains_the_gate_by_tag(dags_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PIPESHIELD_GATE_TRAIN_TAGS=training, the unmodified DAG's train task (it declares an inlet)
    gets the data gate upstream; the other tasks are left alone."""
    monkeypatch.setenv("PIPESHIELD_GATE_TRAIN_TAGS", "training")
    shutil.copy(DAGS / "train_model.py", dags_folder / "train_model.py")
    dag = load_dagbag(dags_folder).dags["train_model"]
    gate = dag.task_dict["pipeshield_gate__train"]
    assert gate.upstream_task_ids == {"extract"}
    assert dag.task_dict["train"].upstream_task_ids == {"extract", "pipeshield_gate__train"}
    assert sum(task_id.startswith("pipeshield_gate__") for task_id in dag.task_dict) == 1
