"""The envelope operators in real DAGs: loaded through ``DagBag`` and run with ``dag.test()``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeshield.datasets import sha256_file
from pipeshield.envelope import IntegrityError, encrypt_file
from pipeshield.keys import open_key_provider

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture
def envelope_dags(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's DAGs folder (Airflow's ``dags-folder`` bundle, which ``dag.test()`` syncs to the DB)."""
    folder = tmp_path / "dags"
    folder.mkdir()
    for name in ("envelope_roundtrip.py", "envelope_tampered.py"):
        shutil.copy(DAGS / name, folder / name)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    from airflow import settings  # read once at import: the value may predate this test

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    return folder


def _dag(folder: Path, dag_id: str):  # noqa: ANN202 - Airflow's DAG type
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}, bag.import_errors
    return bag.get_dag(dag_id)


@pytest.fixture
def people(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    frame = pd.DataFrame({"id": range(200), "email": [f"user{i % 50}@corp.example" for i in range(200)],
                          "ssn": [f"{i:03d}-45-6789" for i in range(200)], "score": [i / 7 for i in range(200)]})
    frame.to_csv(work / "train.csv", index=False)
    with open_key_provider() as provider:
        provider.create_key("pipeshield-data")
    return work


def test_encrypt_decrypt_tokenize_in_a_dag(envelope_dags: Path, people: Path) -> None:
    dag = _dag(envelope_dags, "pipeshield_envelope_roundtrip")
    run = dag.test(run_conf={"workdir": str(people)})
    assert run.state == "success"

    xcom = json.loads((people / "xcom.json").read_text())
    original = sha256_file(people / "train.csv")
    enc, dec = xcom["encrypt"], xcom["decrypt"]
    assert enc["plaintext_sha256"] == dec["plaintext_sha256"] == original
    assert enc["ciphertext_sha256"] == dec["ciphertext_sha256"] == sha256_file(enc["dst"])
    assert (enc["key_name"], enc["key_version"], enc["stage"], dec["stage"]) == ("pipeshield-data", 1, "validate", "train")
    assert enc["dst"] == f"{people}/enc/{run.run_id}.pse"  # templated paths
    assert (people / "dec" / "train.csv").read_bytes() == (people / "train.csv").read_bytes()
    assert b"@corp.example" not in Path(enc["dst"]).read_bytes()

    assert xcom["encrypt_uri"]["plaintext_sha256"] == xcom["decrypt_uri"]["plaintext_sha256"] == original
    assert (people / "uri" / "train.csv").read_bytes() == (people / "train.csv").read_bytes()

    tok = xcom["tokenize"]
    assert tok["token_columns"] == ["email"] and tok["encrypted_columns"] == ["ssn"] and tok["rows"] == 200
    assert tok["output_sha256"] == sha256_file(people / "tok" / "train.parquet")
    table = pd.read_parquet(people / "tok" / "train.parquet")
    assert table["email"].nunique() == 50 and table["email"].str.startswith("tok:v1:").all()
    assert table["ssn"].str.startswith("vault:v1:").all()

    assert set(enc) == {"src", "dst", "stage", "plaintext_sha256", "ciphertext_sha256", "plaintext_size",
                        "ciphertext_size", "key_name", "key_version"}
    assert "vault:v" not in json.dumps(xcom)  # neither wrapped keys nor ciphertexts, let alone key material


def test_tampered_envelope_fails_the_task_and_writes_nothing(envelope_dags: Path, people: Path,
                                                             tmp_path: Path) -> None:
    with open_key_provider() as provider:
        encrypt_file(people / "train.csv", people / "tampered.pse", provider, key_name="pipeshield-data",
                     context="tamper-test")
    dag = _dag(envelope_dags, "pipeshield_envelope_tampered")
    intact = shutil.copytree(people, tmp_path / "intact")
    assert dag.test(run_conf={"workdir": str(intact)}).state == "success"  # the control run decrypts
    assert (intact / "out" / "plain.csv").read_bytes() == (people / "train.csv").read_bytes()

    blob = bytearray((people / "tampered.pse").read_bytes())
    blob[-5] ^= 0x01
    (people / "tampered.pse").write_bytes(bytes(blob))
    assert dag.test(run_conf={"workdir": str(people)}).state == "failed"
    assert not (people / "out").exists() or list((people / "out").iterdir()) == []


def test_object_storage_uris_stream_through_objectstoragepath(people: Path, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    from pipeshield.operators.envelope import DecryptOperator, EncryptOperator

    attach("memory", fs=MemoryFileSystem())  # an in-process object store for the test
    uri = f"memory://pipeshield-test/{tmp_path.name}/train.csv.pse"
    enc = EncryptOperator(task_id="e", src=str(people / "train.csv"), dst=uri).execute({})
    assert ObjectStoragePath(uri).read_bytes().startswith(b"PSHLDENC")
    assert enc["ciphertext_sha256"] == hashlib.sha256(ObjectStoragePath(uri).read_bytes()).hexdigest()
    dec = DecryptOperator(task_id="d", src=uri, dst=str(tmp_path / "back.csv")).execute({})
    assert (tmp_path / "back.csv").read_bytes() == (people / "train.csv").read_bytes()
    assert dec["plaintext_sha256"] == enc["plaintext_sha256"]

    blob = bytearray(ObjectStoragePath(uri).read_bytes())
    blob[-1] ^= 1
    tampered = f"memory://pipeshield-test/{tmp_path.name}/tampered.pse"
    ObjectStoragePath(tampered).write_bytes(bytes(blob))
    target = f"memory://pipeshield-test/{tmp_path.name}/out/plain.csv"
    with pytest.raises(IntegrityError):
        DecryptOperator(task_id="d2", src=tampered, dst=target, binding={"path": uri}).execute({})
    assert not ObjectStoragePath(target).exists()
