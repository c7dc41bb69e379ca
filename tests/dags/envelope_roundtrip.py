"""Test DAG: encrypt a dataset (local path and file:// URI), decrypt it, tokenize a table, collect the XComs.

Paths come from the run conf (``workdir``) through templates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from pipeshield.operators.envelope import DecryptOperator, EncryptOperator, TokenizeColumnsOperator

WORK = "{{ dag_run.conf['workdir'] }}"

with DAG("pipeshield_envelope_roundtrip", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    encrypt = EncryptOperator(task_id="encrypt", src=f"{WORK}/train.csv", dst=f"{WORK}/enc/{{{{ run_id }}}}.pse",
                              binding={"dataset": "train", "run": "{{ run_id }}"}, stage="validate")
    decrypt = DecryptOperator(task_id="decrypt", src="{{ ti.xcom_pull(task_ids='encrypt')['dst'] }}",
                              dst=f"{WORK}/dec/train.csv", binding={"dataset": "train", "run": "{{ run_id }}"})
    encrypt_uri = EncryptOperator(task_id="encrypt_uri", src=f"file://{WORK}/train.csv", dst=f"file://{WORK}/uri/train.pse")
    decrypt_uri = DecryptOperator(task_id="decrypt_uri", src=f"file://{WORK}/uri/train.pse",
                                  dst=f"file://{WORK}/uri/train.csv", binding={"path": f"file://{WORK}/uri/train.pse"})
    tokenize = TokenizeColumnsOperator(task_id="tokenize", src=f"{WORK}/train.csv", dst=f"{WORK}/tok/train.parquet",
                                       token_columns=["email"], encrypt_columns=["ssn"])

    @task
    def collect(workdir: str, **context: object) -> None:
        ti = context["ti"]
        results = {name: ti.xcom_pull(task_ids=name) for name in ("encrypt", "decrypt", "encrypt_uri", "decrypt_uri", "tokenize")}
        Path(workdir, "xcom.json").write_text(json.dumps(results))

    encrypt >> decrypt
    encrypt_uri >> decrypt_uri
    [decrypt, decrypt_uri, tokenize] >> collect(WORK)
