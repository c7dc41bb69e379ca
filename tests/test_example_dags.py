"""The example "existing" DAGs (written without pipeshield) load and run against real MLflow."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from pipeshield.registry import verify_registered_model
from pipeshield.signing import ArtifactDigest, ModelBindings
from tests.fixtures._example_data import land, prepare
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


# --- the same DAGs secured two ways: explicitly (dags/*_secured.py) and untouched under the policies ---------

def _states(run) -> dict[str, str]:  # noqa: ANN001 - a DagRun
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.fixture
def example_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, pd.DataFrame]]:
    """The example DAGs' data directory: approved reference and scoring batch written, nothing landed yet."""
    data_dir = tmp_path / "ml-data"
    tables = prepare(data_dir)
    monkeypatch.setenv("ML_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ML_MODEL_NAME", f"churn-{uuid.uuid4().hex[:8]}")
    return data_dir, tables


def _use_signed_registry(registry, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.url)
    monkeypatch.setenv("PIPESHIELD_KEYRING_DIR", str(registry.keyring_dir))
    monkeypatch.setenv("PIPESHIELD_MASTER_KEY", base64.b64encode(registry.master_key).decode())
    monkeypatch.setenv("PIPESHIELD_SIGNING_KEY", registry.key_name)
    monkeypatch.setenv("PIPESHIELD_TRUSTED_KEYS_DIR", str(registry.trusted_dir))


def test_untouched_training_dag_with_the_policy_runs_green_on_clean_and_red_on_poisoned(
        dags_folder: Path, example_data, mlflow_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    data_dir, tables = example_data
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("PIPESHIELD_GATE_TRAIN_TAGS", "training")
    shutil.copy(DAGS / "train_model.py", dags_folder / "train_model.py")
    dag = load_dagbag(dags_folder).dags["train_model"]

    land(data_dir, tables["poisoned"])
    run = dag.test()
    assert _states(run) == {"extract": "success", "pipeshield_gate__train": "failed",
                            "train": "upstream_failed", "register": "upstream_failed"}
    [report] = Path(os.environ["PIPESHIELD_HOME"]).glob("reports/train_model/*/pipeshield_gate__train.json")
    assert json.loads(report.read_text())["action"] == "failed"

    land(data_dir, tables["clean"])
    run = dag.test()
    assert run.state == "success", _states(run)


def test_secured_training_dag_stops_a_poisoned_batch_at_the_gate(dags_folder: Path,
                                                                  example_data) -> None:  # noqa: ANN001
    data_dir, tables = example_data
    land(data_dir, tables["poisoned"])
    shutil.copy(DAGS / "train_model_secured.py", dags_folder / "train_model_secured.py")
    dag = load_dagbag(dags_folder).dags["train_model_secured"]
    assert dag.task_dict["train"].upstream_task_ids == {"extract", "gate"}
    run = dag.test()
    assert _states(run) == {"extract": "success", "gate": "failed", "train": "upstream_failed",
                            "register": "upstream_failed"}
    [report] = Path(os.environ["PIPESHIELD_HOME"]).glob("reports/train_model_secured/*/gate.json")
    assert "poisoning:reference_label" in json.loads(report.read_text())["fired"]


def test_secured_dags_sign_verify_deploy_and_the_policy_refuses_a_tampered_model(
        dags_folder: Path, example_data, signed_registry, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Clean batch: train_model_secured gates, trains and registers a signed version; deploy_model_secured
    verifies and scores it. The untouched deploy_model gains pipeshield_verify__deploy (the verify policy);
    after one byte of the stored model changes, both deploy DAGs stop before deploy runs."""
    data_dir, tables = example_data
    _use_signed_registry(signed_registry, monkeypatch)
    monkeypatch.setenv("PIPESHIELD_GATE_TRAIN_TAGS", "training")  # the explicit gate is not doubled
    monkeypatch.setenv("PIPESHIELD_VERIFY_DEPLOY_TAGS", "deployment")
    land(data_dir, tables["clean"])
    for name in ("train_model_secured.py", "deploy_model_secured.py", "deploy_model.py"):
        shutil.copy(DAGS / name, dags_folder / name)
    bag = load_dagbag(dags_folder)
    train, secured_deploy, deploy = (bag.dags[d] for d in ("train_model_secured", "deploy_model_secured",
                                                          "deploy_model"))
    assert not any(t.startswith("pipeshield_") for t in [*train.task_dict, *secured_deploy.task_dict])
    assert deploy.task_dict["pipeshield_verify__deploy"].upstream_task_ids == {"fetch"}
    assert deploy.task_dict["deploy"].upstream_task_ids == {"fetch", "pipeshield_verify__deploy"}

    run = train.test()
    assert run.state == "success", _states(run)
    model_name = os.environ["ML_MODEL_NAME"]
    version = signed_registry.client().get_model_version(model_name, "1")
    assert version.tags["pipeshield.signature.root_digest"]
    [report] = Path(os.environ["PIPESHIELD_HOME"]).glob("reports/train_model_secured/*/gate.json")
    incoming = json.loads(report.read_text())["datasets"]["incoming"]
    bound = ModelBindings(datasets=(ArtifactDigest(incoming["uri"], incoming["sha256"]),),
                          gate_reports=(ArtifactDigest(report.resolve().as_uri(),
                                                       hashlib.sha256(report.read_bytes()).hexdigest()),))
    verify_registered_model(model_name, 1, keys=signed_registry.keys(), client=signed_registry.client(),
                            expected=bound, dest_dir=data_dir / "check")  # the data and report the gate passed

    run = secured_deploy.test(run_conf={"model_version": "1"})
    assert run.state == "success", _states(run)
    predictions = pd.read_csv(data_dir / "scoring" / "predictions.csv")
    assert len(predictions) == len(tables["scoring"]) and set(predictions["prediction"]) <= {0, 1}
    run = deploy.test(run_conf={"model_version": "1"})
    assert run.state == "success", _states(run)

    stored = signed_registry.artifact_path(signed_registry.client().get_model_version_download_uri(model_name, "1"))
    weights = next(path for path in stored.iterdir() if path.stem == "model")  # model.skops
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    shutil.rmtree(data_dir / "serving")
    run = deploy.test(run_conf={"model_version": "1"})
    assert _states(run) == {"fetch": "success", "pipeshield_verify__deploy": "failed",
                            "deploy": "upstream_failed", "score": "upstream_failed"}
    run = secured_deploy.test(run_conf={"model_version": "1"})
    assert _states(run) == {"fetch": "failed", "deploy": "upstream_failed", "score": "upstream_failed"}
    assert not (data_dir / "serving").exists()


def test_verify_policy_selects_deploy_tasks_idempotently_and_refuses_one_without_input(
        airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.sdk import DAG, task

    from pipeshield.plugins.verify_policy import dag_policy

    monkeypatch.setenv("PIPESHIELD_VERIFY_DEPLOY_TAGS", "deployment")
    with DAG("tagged", schedule=None, tags=["deployment"]) as tagged:
        fetch = task(lambda: "/models/1", task_id="fetch")()
        rollout = task(lambda path: path, task_id="blue_deploy")(fetch)
        task(lambda path: path, task_id="redeployment_report")(rollout)  # "redeployment" is not the word deploy
    with DAG("marked", schedule=None) as marked:
        fetch = task(lambda: "/models/1", task_id="fetch")()
        task(lambda path: path, task_id="push", params={"pipeshield_stage": "deploy"})(fetch)
    for dag in (tagged, marked):
        dag_policy(dag)
        edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
        dag_policy(dag)  # the worker parses again
        assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == edges
    assert sorted(tagged.task_dict) == ["blue_deploy", "fetch", "pipeshield_verify__blue_deploy", "redeployment_report"]
    assert tagged.task_dict["pipeshield_verify__blue_deploy"].inputs == [("fetch", "return_value")]
    assert marked.task_dict["push"].upstream_task_ids == {"fetch", "pipeshield_verify__push"}

    with DAG("no_input", schedule=None, tags=["deployment"]) as no_input:
        task(lambda: None, task_id="deploy")()
    with pytest.raises(AirflowClusterPolicyViolation, match="no_input.deploy: a deploy task must take its model"):
        dag_policy(no_input)
    with DAG("routed_only", schedule=None) as routed_only:  # the stage marker alone: nothing handed over to check
        task(lambda: None, task_id="roll_out", params={"pipeshield_stage": "deploy"})()
    dag_policy(routed_only)
    assert sorted(routed_only.task_dict) == ["roll_out"]


RECHECK_DAG = '''
import os
import shutil
from pathlib import Path

from airflow.sdk import DAG, task


def change_the_model(context):
    """The DAG's own pre-execute step; it stands for anything that writes the model between the checks."""
    copy = Path(os.environ["MODEL_COPY"])
    if os.environ.get("FLIP_A_BYTE"):
        weights = copy / "weights.json"
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    if os.environ.get("SWAP_IN"):  # another validly signed model
        shutil.rmtree(copy)
        shutil.copytree(os.environ["SWAP_IN"], copy, copy_function=shutil.copyfile)


with DAG("recheck", schedule=None, tags=["deployment"]):
    @task
    def fetch() -> str:
        shutil.rmtree(os.environ["MODEL_COPY"], ignore_errors=True)
        return shutil.copytree(os.environ["MODEL_STORED"], os.environ["MODEL_COPY"], copy_function=shutil.copyfile)

    @task(pre_execute=change_the_model)
    def deploy(path: str) -> None:
        Path(os.environ["DEPLOYED"]).write_text(path)

    deploy(fetch())
'''


@pytest.mark.reliability("hostile input", "model changed between the verify policy's check and the deploy task "
                         "[one byte; another validly signed model]",
                         "the deploy task verifies again as its last pre-execute step and fails; deploy never runs")
def test_deploy_task_verifies_its_model_again_right_before_it_runs(
        dags_folder: Path, signed_registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], reliability) -> None:  # noqa: ANN001
    """The verify policy's check runs as its own task; the deploy task re-verifies in its own process, after
    its other pre-execute steps, so a model changed between the two tasks is refused and never deployed."""
    from pipeshield.registry import register_signed_model
    from tests.fixtures.signed_registry import MODEL_FILES, log_test_model

    _use_signed_registry(signed_registry, monkeypatch)
    monkeypatch.setenv("PIPESHIELD_VERIFY_DEPLOY_TAGS", "deployment")
    client, name = signed_registry.client(), f"recheck-{uuid.uuid4().hex[:8]}"
    stored = []
    for weights in (MODEL_FILES["weights.json"], b'{"coef": [9.0, 9.0, 9.0], "intercept": 0.0}\n'):
        with signed_registry.provider() as provider:
            version = register_signed_model(log_test_model(client, {**MODEL_FILES, "weights.json": weights})[0], name,
                                            provider=provider, key_name=signed_registry.key_name, client=client)
        stored.append(signed_registry.artifact_path(client.get_model_version_download_uri(name, version.version)))
    deployed = tmp_path / "deployed"
    monkeypatch.setenv("MODEL_STORED", str(stored[0]))
    monkeypatch.setenv("MODEL_COPY", str(tmp_path / "handed-over"))
    monkeypatch.setenv("DEPLOYED", str(deployed))
    (dags_folder / "recheck.py").write_text(RECHECK_DAG)
    dag = load_dagbag(dags_folder).dags["recheck"]

    run = dag.test()
    assert _states(run) == {"fetch": "success", "pipeshield_verify__deploy": "success", "deploy": "success"}
    assert deployed.read_text() == str(tmp_path / "handed-over")

    deployed.unlink()
    capsys.readouterr()
    observed = []
    for change, value, expected in (("FLIP_A_BYTE", "1", "changed: 'weights.json'"),
                                    ("SWAP_IN", str(stored[1]), "a validly signed model but not the one verified")):
        with monkeypatch.context() as scope:
            scope.setenv(change, value)
            run = dag.test()
        output = "".join(capsys.readouterr())
        assert _states(run) == {"fetch": "success", "pipeshield_verify__deploy": "success", "deploy": "failed"}
        assert "model refused at deploy (verified again after 'pipeshield_verify__deploy')" in output
        assert expected in output
        assert not deployed.exists()
        observed.append(f"{change}: verify task passed, deploy failed ({expected})")
    reliability(observed="; ".join(observed))
