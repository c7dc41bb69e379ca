"""The deploy gate against a real ``mlflow server`` with the signed store: ``verify_registered_model``,
``pipeshield verify models:/...`` and ``VerifyModelOperator`` in a DAG run with ``dag.test()``."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from pipeshield.cli import main
from pipeshield.errors import BindingMismatchError, ModelIntegrityError
from pipeshield.registry import register_signed_model, verify_registered_model
from pipeshield.signing import ArtifactDigest, ModelBindings
from tests.fixtures.signed_registry import log_test_model

TRAIN = ArtifactDigest(uri="s3://bucket/train.csv", sha256="cd" * 32)


def _registered(registry) -> tuple[str, str]:  # noqa: ANN001
    """A freshly registered signed version: (name, version)."""
    name = f"churn-{uuid.uuid4().hex[:8]}"
    client = registry.client()
    with registry.provider() as provider:
        mv = register_signed_model(log_test_model(client)[0], name, datasets=[TRAIN], provider=provider,
                                   key_name=registry.key_name, client=client)
    return name, mv.version


def _stored_file(registry, name: str, version: str, file: str) -> Path:  # noqa: ANN001
    return registry.artifact_path(registry.client().get_model_version_download_uri(name, version)) / file


def test_verified_copy_and_digests(signed_registry, tmp_path) -> None:
    name, version = _registered(signed_registry)
    verified = verify_registered_model(name, version, keys=signed_registry.keys(), client=signed_registry.client(),
                                       expected=ModelBindings(datasets=(TRAIN,)), dest_dir=tmp_path)
    assert verified.path == tmp_path / name / version
    assert (verified.path / "weights.json").read_bytes().startswith(b'{"coef"')
    assert not (verified.path / "weights.json").stat().st_mode & 0o222  # read-only copy
    stored = signed_registry.client().get_model_version(name, version)
    assert verified.root_digest == stored.tags["pipeshield.signature.root_digest"]
    assert json.loads(json.dumps(verified.to_dict()))["version"] == int(version)


def test_wrong_dataset_binding_fails(signed_registry, tmp_path) -> None:
    name, version = _registered(signed_registry)
    other = ArtifactDigest(uri="s3://bucket/train.csv", sha256="ef" * 32)
    with pytest.raises(BindingMismatchError, match="datasets"):
        verify_registered_model(name, version, keys=signed_registry.keys(), client=signed_registry.client(),
                                expected=ModelBindings(datasets=(other,)), dest_dir=tmp_path)
    assert not (tmp_path / name / version).exists()


@pytest.mark.reliability("hostile input", "one byte changed in the artifact store before deploy",
                         "ModelIntegrityError naming the file; nothing handed over")
def test_one_changed_byte_in_the_artifact_store_fails_naming_the_file(signed_registry, tmp_path) -> None:
    name, version = _registered(signed_registry)
    weights = _stored_file(signed_registry, name, version, "weights.json")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="weights.json") as excinfo:
        verify_registered_model(name, version, keys=signed_registry.keys(), client=signed_registry.client(),
                                dest_dir=tmp_path)
    assert excinfo.value.subject == "weights.json"
    assert not (tmp_path / name / version).exists()  # nothing left to load


def test_cli_verify_models_uri(signed_registry, tmp_path, monkeypatch, capsys) -> None:
    name, version = _registered(signed_registry)
    monkeypatch.setenv("PIPESHIELD_MLFLOW_TRACKING_URI", signed_registry.url)
    pem = next(signed_registry.trusted_dir.glob("*.pem"))
    assert main(["verify", f"models:/{name}/{version}", "--public-key", str(pem)]) == 0
    assert f"model {name!r} verified" in capsys.readouterr().out
    # a file added to the stored version
    (_stored_file(signed_registry, name, version, "weights.json").parent / "extra.py").write_text("import os\n")
    assert main(["verify", f"models:/{name}/{version}", "--public-key", str(pem)]) == 1
    assert "added: 'extra.py'" in capsys.readouterr().err


@pytest.mark.reliability("hostile input", "changed requirements.txt behind models:/name@champion",
                         "pipeshield verify exits 1 naming the file")
def test_cli_verify_models_uri_refuses_a_changed_file(signed_registry, monkeypatch, capsys) -> None:
    name, version = _registered(signed_registry)
    signed_registry.client().set_registered_model_alias(name, "champion", version)
    monkeypatch.setenv("PIPESHIELD_MLFLOW_TRACKING_URI", signed_registry.url)
    requirements = _stored_file(signed_registry, name, version, "requirements.txt")
    requirements.write_text("scikit-learn==1.5.2\nevil-package\n")
    pem = next(signed_registry.trusted_dir.glob("*.pem"))
    assert main(["verify", f"models:/{name}@champion", "--public-key", str(pem)]) == 1
    assert "changed: 'requirements.txt'" in capsys.readouterr().err


DAG_FILE = '''
import pendulum
from airflow.sdk import DAG
from pipeshield.operators.verify_model import VerifyModelOperator

with DAG("deploy_{suffix}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    VerifyModelOperator(task_id="verify", model_name="{name}", version="{version}",
                        datasets=[{{"uri": "{uri}", "sha256": "{sha}"}}], dest_dir="{dest}")
'''


def _run_dag(registry, airflow_db: Path, name: str, version: str, dest: Path, monkeypatch):  # noqa: ANN001, ANN202
    from airflow.dag_processing.dagbag import DagBag

    suffix = uuid.uuid4().hex[:8]
    dag_file = airflow_db / "dags" / f"deploy_{suffix}.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE.format(suffix=suffix, name=name, version=version, uri=TRAIN.uri,
                                                        sha=TRAIN.sha256, dest=dest)))
    host = registry.url.split("://", 1)[1]
    monkeypatch.setenv("AIRFLOW_CONN_PIPESHIELD_MLFLOW_DEFAULT", json.dumps({"conn_type": "pipeshield_mlflow",
                                                                              "host": host, "schema": "http"}))
    monkeypatch.setenv("PIPESHIELD_TRUSTED_KEYS_DIR", str(registry.trusted_dir))
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(f"deploy_{suffix}")
    return dag.test()


def test_dag_with_verify_model_operator(signed_registry, airflow_db, tmp_path, monkeypatch) -> None:
    name, version = _registered(signed_registry)
    run = _run_dag(signed_registry, airflow_db, name, version, tmp_path, monkeypatch)
    assert run.state == "success"
    ti = run.get_task_instance("verify")
    result = ti.xcom_pull(task_ids="verify")
    assert result["path"] == str(tmp_path / name / version)
    assert result["name"] == name and result["version"] == int(version)
    assert len(result["root_digest"]) == 64


def test_dag_fails_on_a_tampered_model(signed_registry, airflow_db, tmp_path, monkeypatch, capsys) -> None:
    name, version = _registered(signed_registry)
    _stored_file(signed_registry, name, version, "MLmodel").write_bytes(b"loader_module: evil\n")
    run = _run_dag(signed_registry, airflow_db, name, version, tmp_path, monkeypatch)
    assert run.state == "failed"
    captured = capsys.readouterr()
    assert "ModelIntegrityError" in captured.out + captured.err
    assert "changed: 'MLmodel'" in captured.out + captured.err
    assert not (tmp_path / name / version).exists()


@pytest.mark.reliability("hostile input", "validly signed model of another name swapped into the artifact store",
                         "deploy gate refuses")
def test_validly_signed_model_of_another_name_swapped_in_fails(signed_registry, tmp_path) -> None:
    import shutil

    target, target_version = _registered(signed_registry)
    other, other_version = _registered(signed_registry)
    stored = _stored_file(signed_registry, target, target_version, "MLmodel").parent
    shutil.rmtree(stored)
    shutil.copytree(_stored_file(signed_registry, other, other_version, "MLmodel").parent, stored)
    with pytest.raises(BindingMismatchError, match="binding 'name' mismatch") as excinfo:
        verify_registered_model(target, target_version, keys=signed_registry.keys(),
                                client=signed_registry.client(), dest_dir=tmp_path)
    assert excinfo.value.subject == "name"


@pytest.mark.reliability("hostile input", "file removed from the artifact store before deploy",
                         "deploy gate refuses naming the file")
def test_removed_file_fails_naming_it(signed_registry, tmp_path) -> None:
    name, version = _registered(signed_registry)
    _stored_file(signed_registry, name, version, "requirements.txt").unlink()
    with pytest.raises(ModelIntegrityError, match="missing: 'requirements.txt'"):
        verify_registered_model(name, version, keys=signed_registry.keys(), client=signed_registry.client(),
                                dest_dir=tmp_path)


PIPELINE_DAG = """
import pendulum
from airflow.sdk import DAG
from pipeshield.operators.register_signed_model import RegisterSignedModelOperator
from pipeshield.operators.verify_model import VerifyModelOperator

with DAG("pipeline_{suffix}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         render_template_as_native_obj=True):
    register = RegisterSignedModelOperator(task_id="register", model_uri="{model_uri}", model_name="{name}",
                                           datasets=[{{"uri": "{uri}", "sha256": "{sha}"}}])
    verify = VerifyModelOperator(task_id="verify", model_name="{name}",
                                 version="{{{{ ti.xcom_pull(task_ids='register')['version'] }}}}",
                                 datasets=[{{"uri": "{uri}", "sha256": "{sha}"}}], dest_dir="{dest}")
    register >> verify
"""


def test_dag_registers_then_verifies(signed_registry, airflow_db, tmp_path, monkeypatch) -> None:
    import base64

    from airflow.dag_processing.dagbag import DagBag

    name, suffix = f"pipe-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    model_uri, run_id = log_test_model(signed_registry.client())
    dag_file = airflow_db / "dags" / f"pipeline_{suffix}.py"
    dag_file.write_text(PIPELINE_DAG.format(suffix=suffix, model_uri=model_uri, name=name, uri=TRAIN.uri,
                                            sha=TRAIN.sha256, dest=tmp_path))
    monkeypatch.setenv("PIPESHIELD_MLFLOW_TRACKING_URI", signed_registry.url)
    monkeypatch.setenv("PIPESHIELD_KEYRING_DIR", str(signed_registry.keyring_dir))  # register stage: may sign
    monkeypatch.setenv("PIPESHIELD_MASTER_KEY", base64.b64encode(signed_registry.master_key).decode())
    monkeypatch.setenv("PIPESHIELD_TRUSTED_KEYS_DIR", str(signed_registry.trusted_dir))  # deploy: public keys
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag(f"pipeline_{suffix}").test()
    assert run.state == "success"
    registered = run.get_task_instance("register").xcom_pull(task_ids="register")
    verified = run.get_task_instance("verify").xcom_pull(task_ids="verify")
    assert registered["version"] == verified["version"] == 1
    assert registered["root_digest"] == verified["root_digest"]
    assert verified["run_id"] == run_id and verified["path"] == str(tmp_path / name / "1")
