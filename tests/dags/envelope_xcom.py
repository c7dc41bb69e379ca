"""Test DAG for the encrypted XCom backend: a small and a large value pass between tasks."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

with DAG("pipeshield_envelope_xcom", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task
    def produce() -> dict:
        return {"token": "s3cr3t-xcom-value", "rows": 42, "when": datetime.datetime(2026, 11, 26, 12, 0)}

    @task
    def produce_big() -> str:
        return "big-s3cr3t:" + "y" * 5000

    @task
    def consume(small: dict, big: str, **context: object) -> None:
        workdir = context["dag_run"].conf["workdir"]  # type: ignore[index]
        Path(workdir, "pulled.json").write_text(json.dumps(
            {"small": {**small, "when": small["when"].isoformat()}, "big_len": len(big), "big_head": big[:11]}))

    consume(produce(), produce_big())
