"""The data gate in Airflow: DAGs loaded through DagBag (cluster policies applied) and run with dag.test()
on the session's real metadata DB."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from tests.gate_data import GateData, make_tables

DAGS = Path(__file__).parent / "dags"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> GateData:
    return make_tables(tmp_path_factory.mktemp("gate-data"))


@pytest.fixture
def dag_folder(airflow_db: Path) -> Iterator[Path]:
    """The session's DAGs folder (dag.test() syncs that bundle); this test's DAG files are removed after it."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    before = set(folder.iterdir())
    yield folder
    for path in set(folder.iterdir()) - before:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _bag(folder: Path, dag_file: str, config: dict[str, Any]) -> Any:
    """Write ``dag_file`` (from tests/dags) and its JSON config to ``folder`` and load it through DagBag."""
    from airflow.dag_processing.dagbag import DagBag

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGS / dag_file, folder)
    (folder / dag_file).with_suffix(".json").write_text(json.dumps(config))
    return DagBag(dag_folder=str(folder / dag_file))


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_policy_inserts_the_gate_upstream_of_training_idempotently(airflow_db: Path, tables: GateData,
                                                                    tmp_path: Path) -> None:
    from pipeshield.plugins.gate_policy import dag_policy

    config = {"data": tables.clean.as_uri(), "trained_marker": str(tmp_path / "trained.json")}
    bag = _bag(tmp_path / "first", "gate_policy_train.py", config)
    assert not bag.import_errors
    dag = bag.dags["gate_policy_train"]
    gate = dag.task_dict["pipeshield_gate__train"]
    assert dag.task_dict["train"].upstream_task_ids == {"extract", "pipeshield_gate__train"}
    assert gate.upstream_task_ids == {"extract"} and gate.downstream_task_ids == {"train"}
    assert (gate.data, gate.on_flag, gate.label_column, gate.stage) == (tables.clean.as_uri(), "fail", "label", "validate")
    assert dag.task_dict["extract"].upstream_task_ids == set()  # untouched tasks stay untouched

    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    dag_policy(dag)  # the worker re-parses and the policy runs again
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == edges
    again = _bag(tmp_path / "second", "gate_policy_train.py", config).dags["gate_policy_train"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in again.tasks} == edges


def test_policy_refuses_a_training_task_without_a_dataset(airflow_db: Path, tmp_path: Path) -> None:
    bag = _bag(tmp_path, "gate_no_inlet.py", {})
    assert "gate_no_inlet" not in bag.dags
    [error] = bag.import_errors.values()
    assert "gate_no_inlet.train: a training task must declare exactly one dataset inlet" in error


def test_poisoned_batch_fails_at_the_gate_and_training_never_runs(dag_folder: Path, tables: GateData,
                                                                  tmp_path: Path) -> None:
    marker = tmp_path / "trained.json"
    config = {"data": tables.poisoned.as_uri(), "trained_marker": str(marker),
              "gate": {"reference": str(tables.reference)}}
    dag = _bag(dag_folder, "gate_policy_train.py", config).dags["gate_policy_train"]
    run = dag.test()
    assert run.state == "failed"
    assert _states(run) == {"extract": "success", "pipeshield_gate__train": "failed",
                            "train": "upstream_failed", "publish": "upstream_failed"}
    assert not marker.exists()
    [report] = Path(os.environ["PIPESHIELD_HOME"]).glob("reports/gate_policy_train/*/pipeshield_gate__train.json")
    assert json.loads(report.read_text())["action"] == "failed"


def test_clean_batch_passes_the_gate_and_trains(dag_folder: Path, tables: GateData, tmp_path: Path) -> None:
    marker = tmp_path / "trained.json"
    config = {"data": tables.clean.as_uri(), "trained_marker": str(marker),
              "gate": {"reference": str(tables.reference), "suite": str(tables.suite)}}
    dag = _bag(dag_folder, "gate_policy_train.py", config).dags["gate_policy_train"]
    run = dag.test()
    assert run.state == "success", _states(run)
    assert json.loads(marker.read_text())["rows"] == 400
    gate_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "pipeshield_gate__train")
    result = gate_ti.xcom_pull(task_ids="pipeshield_gate__train")
    assert result["verdict"] == "pass" and result["incoming"]["uri"] == tables.clean.resolve().as_uri()
    assert len(result["report_sha256"]) == 64 and Path(result["report_path"]).is_file()


def test_quarantine_mode_trains_on_the_clean_split(dag_folder: Path, tables: GateData, tmp_path: Path) -> None:
    marker = tmp_path / "trained.json"
    config = {"data": str(tables.poisoned), "reference": str(tables.reference), "on_flag": "quarantine",
              "report": str(tmp_path / "reports" / "gate.json"), "trained_marker": str(marker)}
    dag = _bag(dag_folder, "gate_explicit_train.py", config).dags["gate_explicit_train"]
    run = dag.test()
    assert run.state == "success", _states(run)
    report = json.loads((tmp_path / "reports" / "gate.json").read_text())
    assert report["action"] == "quarantined" and report["flagged_rows"]
    trained = json.loads(marker.read_text())
    clean = report["datasets"]["clean"]
    assert Path(trained["source"]).resolve().as_uri() == clean["uri"]
    assert trained["rows"] == clean["rows"] == 415 - len(report["flagged_rows"])
    assert len(pd.read_parquet(trained["source"])) == trained["rows"]


def test_operator_failure_names_the_checks_that_fired(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipeshield.operators.data_gate import DataGateOperator
    from tests.gate_data import SUITE

    data = tmp_path / "batch.parquet"
    pd.DataFrame({"f0": [0.1, 42.0, 0.3], "label": [0, 1, 0]}).to_parquet(data)
    gate = DataGateOperator(task_id="gate", data=str(data), suite=SUITE, poisoning=False,
                            report_path=str(tmp_path / "r.json"))
    with pytest.raises(AirflowFailException,
                       match=r"data gate failed: validation:expect_column_values_to_be_between\(f0\) fired"):
        gate.execute({})
    bad_schema = DataGateOperator(task_id="g2", data=str(data), suite=SUITE, poisoning=False,
                                  schema={"f0": "int", "label": "int"}, report_path=str(tmp_path / "r2.json"))
    with pytest.raises(AirflowFailException, match=r"cannot check this batch: .*'f0' is float64, expected int"):
        bad_schema.execute({})


def test_policy_selects_by_operator_class_inside_task_groups(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG, Asset, BaseOperator, TaskGroup

    from pipeshield.plugins.gate_policy import dag_policy

    class FitOperator(BaseOperator):
        def execute(self, context: Any) -> None:
            pass

    monkeypatch.setenv("PIPESHIELD_GATE_TRAIN_OPERATORS", "FitOperator")
    monkeypatch.setenv("PIPESHIELD_GATE_ON_FLAG", "quarantine")
    with DAG("groups", schedule=None, params={"pipeshield_stage": "train"}) as dag:  # DAG-level marker: ignored
        prep = BaseOperator(task_id="prep")
        with TaskGroup("fit"):
            fit = FitOperator(task_id="xgb", inlets=[Asset("file:///data/batch.csv", extra={"pipeshield": {"label_column": "y"}})])
        prep >> fit
    dag_policy(dag)
    gate = dag.task_dict["fit.pipeshield_gate__xgb"]
    assert sorted(dag.task_dict) == ["fit.pipeshield_gate__xgb", "fit.xgb", "prep"]
    assert gate.upstream_task_ids == {"prep"} and fit.upstream_task_ids == {"prep", "fit.pipeshield_gate__xgb"}
    assert (gate.label_column, gate.on_flag) == ("y", "fail")  # quarantine without a declared clean file: fail closed


def test_policy_gates_tasks_with_inlets_in_a_configured_dag_tag(airflow_db: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG, Asset, BaseOperator

    from pipeshield.plugins.gate_policy import dag_policy

    snapshot = Asset("file:///data/snapshots/train.csv")
    monkeypatch.setenv("PIPESHIELD_GATE_TRAIN_TAGS", "training, nightly")
    with DAG("tagged", schedule=None, tags=["ml", "training"]) as tagged:
        extract = BaseOperator(task_id="extract", outlets=[snapshot])
        extract >> BaseOperator(task_id="train", inlets=[snapshot]) >> BaseOperator(task_id="register")
    with DAG("untagged", schedule=None, tags=["ml"]) as untagged:
        BaseOperator(task_id="train", inlets=[snapshot])
    for dag in (tagged, untagged):
        dag_policy(dag)
    assert sorted(tagged.task_dict) == ["extract", "pipeshield_gate__train", "register", "train"]
    assert tagged.task_dict["pipeshield_gate__train"].data == "file:///data/snapshots/train.csv"
    assert sorted(untagged.task_dict) == ["train"]
