"""Test DAG: decrypt an envelope that was tampered with; the task must fail and write nothing."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from pipeshield.operators.envelope import DecryptOperator

WORK = "{{ dag_run.conf['workdir'] }}"

with DAG("pipeshield_envelope_tampered", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    DecryptOperator(task_id="decrypt", src=f"{WORK}/tampered.pse", dst=f"{WORK}/out/plain.csv",
                    binding="tamper-test", retries=0)
