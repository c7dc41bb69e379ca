"""Per-stage identity in Airflow: the cluster policy's routing, a DAG run where every task acts as its own
stage in Vault, and the audit of DAG folders and manifests."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import hvac.exceptions
import pytest
import yaml

from pipeshield.cli import main
from pipeshield.stages import default_manifest_path, load_manifest
from tests.fixtures.stages import Deployment

HEADER = """\
import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.python import PythonOperator
from tests.stage_probe import StageProbeOperator, marker_probe
"""


def write_dag(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def identity_dag(record: Path, wrapped: str, dag_id: str = "stages_identity") -> str:
    return f"""
with DAG({dag_id!r}, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
    validate = StageProbeOperator(task_id="validate_data", stage="validate", operation="decrypt",
                                  key="pipeshield-data", wrapped={wrapped!r}, record={str(record)!r})
    train = StageProbeOperator(task_id="train_model", operation="datakey", key="pipeshield-data",
                               record={str(record)!r})
    register = StageProbeOperator(task_id="register_model", stage="register", operation="sign",
                                  key="pipeshield-signing", record={str(record)!r})
    deploy = PythonOperator(task_id="deploy_model", python_callable=marker_probe,
                            op_kwargs={{"record": {str(record)!r}, "key": "pipeshield-signing"}},
                            params={{"pipeshield_stage": "deploy"}})
    validate >> train >> register >> deploy
"""


def bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder), safe_mode=False)


@pytest.fixture
def worker_env(stage_deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    for name, value in stage_deployment.environ().items():
        monkeypatch.setenv(name, value)
    return stage_deployment


def test_policy_routes_each_task_to_its_stage(worker_env: Deployment, tmp_path: Path, airflow_db: Path) -> None:
    write_dag(tmp_path, "identity", identity_dag(tmp_path / "record.jsonl", "vault:v1:x") + """
    extract = PythonOperator(task_id="extract", python_callable=print)
    from kubernetes.client import models as k8s
    shared = k8s.V1Pod(spec=k8s.V1PodSpec(service_account_name="default", containers=[
        k8s.V1Container(name="base", env=[k8s.V1EnvVar(name="PIPESHIELD_STAGE", value="serve"),
                                         k8s.V1EnvVar(name="KEEP", value="1")])]))
    for t in (validate, train):
        t.executor_config = {"pod_override": shared}
""")
    dagbag = bag(tmp_path)
    assert dagbag.import_errors == {}
    dag = dagbag.dags["stages_identity"]
    manifest = worker_env.manifest
    for task_id, stage in (("validate_data", "validate"), ("train_model", "train"),
                           ("register_model", "register"), ("deploy_model", "deploy")):
        task, spec = dag.get_task(task_id), manifest.stage(stage)
        assert task.queue == stage
        pod = task.executor_config["pod_override"]
        assert pod.spec.service_account_name == spec.kubernetes.service_account
        env = {e.name: e.value for e in pod.spec.containers[0].env}
        assert env["PIPESHIELD_STAGE"] == stage and env[f"PIPESHIELD_STAGE_{stage.upper()}_AUTH"] == "kubernetes"
        assert env[f"PIPESHIELD_STAGE_{stage.upper()}_ROLE"] == spec.kubernetes.role
        assert pod.metadata.labels["pipeshield.io/stage"] == stage
        if task_id in ("validate_data", "train_model"):  # the author's shared pod, copied per task
            assert env["KEEP"] == "1"
    extract = dag.get_task("extract")
    assert extract.queue == "default" and not extract.executor_config  # unstaged tasks are left alone


def test_unknown_stage_is_refused_by_the_policy(worker_env: Deployment, tmp_path: Path, airflow_db: Path) -> None:
    write_dag(tmp_path, "bad", """
with DAG("stages_bad", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    PythonOperator(task_id="oops", python_callable=print, params={"pipeshield_stage": "trian"})
""")
    errors = bag(tmp_path).import_errors
    assert len(errors) == 1
    message = next(iter(errors.values()))
    assert "AirflowClusterPolicyViolation" in message and "unknown pipeshield stage 'trian'" in message
    assert "stages_bad.oops" in message


def _runnable(airflow_db: Path, name: str, body: str) -> Path:
    """A DAG file in the session's DAGs folder (``dag.test()`` syncs that bundle to the metadata DB)."""
    return write_dag(airflow_db / "dags", f"{name}_{uuid.uuid4().hex[:8]}", body)


def test_dag_run_uses_one_vault_identity_per_stage(worker_env: Deployment, tmp_path: Path, airflow_db: Path) -> None:
    record = tmp_path / "record.jsonl"
    dag_id = f"stages_identity_{uuid.uuid4().hex[:8]}"
    path = _runnable(airflow_db, dag_id, identity_dag(record, worker_env.wrapped["pipeshield-data"], dag_id))
    dag = bag(path).dags[dag_id]
    run = dag.test()
    assert run.state == "success"
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["validate", "train", "register", "deploy"]
    manifest = worker_env.manifest
    for row in rows:
        assert row["policies"] == ["default", manifest.stage(row["stage"]).policy]
    assert len({r["accessor"] for r in rows}) == 4
    root = worker_env.vault.client()
    for row in rows:  # every token was revoked when its task ended
        with pytest.raises(hvac.exceptions.VaultError):
            root.auth.token.lookup_accessor(row["accessor"])


def test_a_task_acting_beyond_its_stage_fails(worker_env: Deployment, tmp_path: Path, airflow_db: Path) -> None:
    record = tmp_path / "record.jsonl"
    dag_id = f"stages_greedy_{uuid.uuid4().hex[:8]}"
    path = _runnable(airflow_db, dag_id, f"""
with DAG({dag_id!r}, schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    StageProbeOperator(task_id="train_signs", operation="sign", key="pipeshield-signing", record={str(record)!r})
""")
    run = bag(path).dags[dag_id].test()
    assert run.state == "failed" and not record.exists()


def _audit(folder: Path, manifest: Path | None = None) -> tuple[int, list[dict]]:
    import contextlib
    import io

    out = io.StringIO()
    args = ["stages", "audit", str(folder), "--json"] + (["--manifest", str(manifest)] if manifest else [])
    with contextlib.redirect_stdout(out):
        code = main(args)
    return code, json.loads(out.getvalue())


def test_audit_passes_a_clean_dag_and_the_default_manifest(tmp_path: Path, airflow_db: Path) -> None:
    write_dag(tmp_path, "identity", identity_dag(tmp_path / "r.jsonl", "vault:v1:x"))
    assert _audit(tmp_path) == (0, [])


def test_audit_flags_unstaged_tasks(tmp_path: Path, airflow_db: Path) -> None:
    write_dag(tmp_path, "identity", identity_dag(tmp_path / "r.jsonl", "vault:v1:x") + """
    extract = PythonOperator(task_id="extract", python_callable=print)
""")
    code, findings = _audit(tmp_path)
    assert code == 1
    assert [(f["kind"], f["subject"]) for f in findings] == [("unstaged-task", "task stages_identity.extract")]


def test_audit_reports_dags_the_policy_refused(tmp_path: Path, airflow_db: Path) -> None:
    write_dag(tmp_path, "bad", """
with DAG("stages_bad", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    PythonOperator(task_id="oops", python_callable=print, params={"pipeshield_stage": "trian"})
""")
    code, findings = _audit(tmp_path)
    assert code == 1 and findings[0]["kind"] == "dag-import-error" and "trian" in findings[0]["message"]


def test_audit_flags_an_over_privileged_manifest(tmp_path: Path, airflow_db: Path) -> None:
    document = yaml.safe_load(default_manifest_path().read_text())
    stages = document["stages"]
    stages["train"]["transit"]["pipeshield-signing"] = ["sign"]           # sign and decrypt together
    stages["validate"]["transit"]["pipeshield-*"] = ["decrypt"]            # wildcard
    stages["register"]["vault_paths"] = {"sys/policies/acl/pipeshield-register": ["update", "sudo"]}  # sudo
    stages["serve"]["auth"]["kubernetes"] = {"service_account": "pipeshield-deploy"}  # identity shared with deploy
    stages["deploy"]["transit"]["pipeshield-models"] = ["decrypt", "rewrap"]  # VerifyModelOperator never rewraps
    stages["register"]["mlflow"]["registered_model"] = "MANAGE"
    manifest_file = tmp_path / "greedy.yaml"
    manifest_file.write_text(yaml.safe_dump(document, sort_keys=False))
    dags = tmp_path / "dags"  # no DAGs: breadth is judged against the operators the manifest lists
    dags.mkdir()
    code, findings = _audit(dags, manifest_file)
    assert code == 1
    kinds = {(f["kind"], f["subject"]) for f in findings}
    assert kinds == {
        ("sign-and-decrypt", "stage train"),
        ("wildcard", "stage validate"),
        ("sudo", "stage register"),
        ("shared-identity", "ServiceAccount airflow/pipeshield-deploy"),
        ("broader-than-needed", "stage train"),
        ("broader-than-needed", "stage deploy"),
        ("mlflow-manage", "stage register"),
    }
    lines = manifest_file.read_text().splitlines()
    wildcard = next(f for f in findings if f["kind"] == "wildcard")
    assert "pipeshield-*" in lines[wildcard["line"] - 1]
    assert load_manifest(manifest_file)  # over-privileged is still a valid manifest: the audit is the gate
