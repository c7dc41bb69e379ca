"""The shared DAG/task selector vocabulary (pipeshield.selectors) and its Airflow facts (plugins.selection)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeshield.errors import ConfigError, PipeshieldError
from pipeshield.selectors import DagFacts, TaskFacts, parse_dag_selector, parse_task_selector

PYTHON_OPERATOR = "airflow.providers.standard.operators.python.PythonOperator"


def _dag(dag_id: str = "fraud_train", tags: tuple[str, ...] = ("fraud",), fileloc: str | None = "/dags/ml/x.py",
         bundle: str | None = "ml") -> DagFacts:
    return DagFacts(dag_id=dag_id, tags=frozenset(tags), fileloc=fileloc, bundle=bundle)


def test_an_empty_selector_matches_nothing() -> None:
    assert not parse_dag_selector({}, "grant").matches(_dag())
    assert not parse_task_selector({}, "grant").matches(TaskFacts(_dag(), "train"))


@pytest.mark.parametrize(("selector", "dag", "expected"), [
    ({"tags": ["fraud"]}, _dag(), True),
    ({"tags": ["churn"]}, _dag(), False),
    ({"dag_ids": ["fraud_*"]}, _dag(), True),
    ({"dag_ids": ["fraud_*"]}, _dag(dag_id="Fraud_train"), False),  # case-sensitive, like DAG ids
    ({"folders": ["/dags/ml"]}, _dag(), True),
    ({"folders": ["/dags/ml"]}, _dag(fileloc="/dags/ml2/x.py"), False),  # a prefix of the name is not a parent
    ({"folders": ["/dags/ml"]}, _dag(fileloc="/dags/ml/../other/x.py"), False),
    ({"folders": ["/dags/ml"]}, _dag(fileloc=None), False),
    ({"bundles": ["ml"]}, _dag(), True),
    ({"bundles": ["ml"]}, _dag(bundle=None), False),
    ({"tags": ["fraud"], "folders": ["/dags/other"]}, _dag(), False),  # every given field must match
])
def test_dag_selector_fields(selector: dict, dag: DagFacts, expected: bool) -> None:
    assert parse_dag_selector(selector, "grant").matches(dag) is expected


def test_folder_selectors_follow_symlinks_to_the_real_file(tmp_path: Path) -> None:
    (tmp_path / "ml").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "ml" / "link.py").symlink_to(tmp_path / "elsewhere" / "x.py")
    selector = parse_dag_selector({"folders": [str(tmp_path / "ml")]}, "grant")
    assert not selector.matches(_dag(fileloc=str(tmp_path / "ml" / "link.py")))


def test_only_folders_and_bundles_are_outside_the_authors_control() -> None:
    assert parse_dag_selector({"tags": ["x"], "dag_ids": ["*"]}, "g").author_controlled()
    assert not parse_dag_selector({"tags": ["x"], "bundles": ["ml"]}, "g").author_controlled()


def test_task_selector_matches_task_ids_and_full_operator_paths() -> None:
    selector = parse_task_selector(
        {"dags": {"tags": ["fraud"]}, "task_ids": ["train*"], "operators": [PYTHON_OPERATOR]}, "assign")
    own = TaskFacts(_dag(), "train_model", (PYTHON_OPERATOR,))
    assert selector.matches(own)
    assert not selector.matches(TaskFacts(_dag(), "score", (PYTHON_OPERATOR,)))
    assert not selector.matches(TaskFacts(_dag(), "train_model", ("my.module.PythonOperator",)))
    assert not selector.matches(TaskFacts(_dag(tags=()), "train_model", (PYTHON_OPERATOR,)))


@pytest.mark.parametrize(("value", "needle"), [
    ([], "mapping"),
    ({"tag": ["x"]}, "unknown selector field"),
    ({"tags": "x", "dag_ids": [""]}, "non-empty"),
    ({"tags": [1]}, "non-empty strings"),
])
def test_malformed_dag_selectors_name_the_field(value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        parse_dag_selector(value, "stages.register.grants")
    assert isinstance(info.value, PipeshieldError)
    assert "stages.register.grants" in str(info.value)


def test_operators_must_be_full_import_paths() -> None:
    with pytest.raises(ConfigError, match="bare class name"):
        parse_task_selector({"dags": {"tags": ["x"]}, "operators": ["VerifyModelOperator"]}, "assign")


def test_airflow_facts_carry_folder_bundle_and_class_paths(airflow_db: Path, tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.policies import hookimpl
    from airflow.settings import get_policy_plugin_manager

    from pipeshield.plugins.selection import dag_facts, task_facts

    (tmp_path / "facts_dag.py").write_text(textwrap.dedent("""
        import pendulum
        from airflow.sdk import DAG
        from airflow.providers.standard.operators.python import PythonOperator

        class MyOperator(PythonOperator):
            pass

        with DAG("facts_dag", schedule=None, start_date=pendulum.datetime(2025, 1, 1), tags=["fraud"]):
            MyOperator(task_id="train", python_callable=lambda: None)
    """))
    seen: dict[str, object] = {}

    class Recorder:
        @hookimpl
        def dag_policy(self, dag: object) -> None:
            seen["dag"] = dag_facts(dag)
            seen["task"] = task_facts(dag.get_task("train"), dag)  # type: ignore[attr-defined]

    manager = get_policy_plugin_manager()
    recorder = Recorder()
    manager.register(recorder)
    try:
        DagBag(dag_folder=str(tmp_path / "facts_dag.py"), bundle_name="ml-platform")
    finally:
        manager.unregister(recorder)
    dag, task = seen["dag"], seen["task"]
    assert dag == DagFacts("facts_dag", frozenset({"fraud"}), str(tmp_path / "facts_dag.py"), "ml-platform")
    assert task.operator_paths[0].endswith("facts_dag.MyOperator") or task.operator_paths[0].endswith(".MyOperator")
    assert PYTHON_OPERATOR in task.operator_paths
    assert parse_task_selector({"dags": {"bundles": ["ml-platform"]}, "operators": [PYTHON_OPERATOR]},
                               "a").matches(task)
