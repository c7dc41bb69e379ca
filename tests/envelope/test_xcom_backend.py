"""The encrypted XCom backend, configured the Airflow way (``[core] xcom_backend``) in a real
``airflow dags test`` run: tasks exchange values, the metadata DB and object store hold only ciphertext."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from pipeshield.envelope import ContextMismatchError
from pipeshield.keys import open_key_provider
from tests.fixtures.airflow_env import airflow_cli

DAGS = Path(__file__).resolve().parents[1] / "dags"


def test_values_round_trip_and_are_stored_encrypted(airflow_db: Path, tmp_path: Path) -> None:
    folder, work, store = tmp_path / "dags", tmp_path / "work", tmp_path / "xcom-store"
    folder.mkdir()
    work.mkdir()
    shutil.copy(DAGS / "envelope_xcom.py", folder / "envelope_xcom.py")
    with open_key_provider() as provider:
        provider.create_key("pipeshield-data")
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__XCOM_BACKEND": "pipeshield.plugins.xcom.EncryptedXComBackend",
        "AIRFLOW__PIPESHIELD__XCOM_OBJECTSTORAGE_PATH": f"file://{store}",
        "AIRFLOW__PIPESHIELD__XCOM_OBJECTSTORAGE_THRESHOLD": "2000",
    }
    result = airflow_cli("dags", "test", "pipeshield_envelope_xcom", "--conf", json.dumps({"workdir": str(work)}),
                         env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    pulled = json.loads((work / "pulled.json").read_text())
    assert pulled == {"small": {"token": "s3cr3t-xcom-value", "rows": 42, "when": "2026-11-26T12:00:00"},
                      "big_len": 5011, "big_head": "big-s3cr3t:"}

    with sqlite3.connect(airflow_db / "airflow.db") as db:
        rows = dict(db.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = 'pipeshield_envelope_xcom' AND key = 'return_value'"
        ).fetchall())
    small, big = (json.loads(rows[t]) if isinstance(rows[t], str) else rows[t] for t in ("produce", "produce_big"))
    assert small["__pipeshield_envelope__"] == 1 and "envelope" in small
    assert big["path"].startswith(f"file://{store}/")
    assert "s3cr3t" not in json.dumps(rows)
    stored = list(store.rglob("*.pse"))
    assert len(stored) == 1 and stored[0].read_bytes().startswith(b"PSHLDENC")
    assert b"s3cr3t" not in stored[0].read_bytes()


def test_a_value_read_under_another_key_is_refused() -> None:
    from airflow.sdk.execution_time.comms import XComResult

    from pipeshield.plugins.xcom import EncryptedXComBackend

    with open_key_provider() as provider:
        provider.create_key("pipeshield-data")
    stored = EncryptedXComBackend.serialize_value({"a": [1, 2]}, key="features", task_id="t", dag_id="d",
                                                  run_id="r", map_index=-1)
    assert set(stored) == {"__pipeshield_envelope__", "envelope"}
    assert EncryptedXComBackend.deserialize_value(XComResult(key="features", value=stored)) == {"a": [1, 2]}
    with pytest.raises(ContextMismatchError, match="stored under key 'features', not 'labels'"):
        EncryptedXComBackend.deserialize_value(XComResult(key="labels", value=stored))
