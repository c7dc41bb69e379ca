"""End to end under ``airflow standalone`` (real scheduler, API server and LocalExecutor workers) with
``[traces] otel_on`` and OTLP/HTTP export to a receiver in the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeshield.lineage import Ledger
from pipeshield.lineage import attributes as A
from tests.fixtures.processes import free_port, running

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SECRET = "s.standaloneSecretToken77"

UNMODIFIED_DAG = '''
from airflow.sdk import DAG, Asset, task

@task(inlets=[Asset("file:///data/raw.csv")], outlets=[Asset("file:///data/clean.csv")])
def validate_input():
    return None

@task
def summarize():
    return None

with DAG("lineage_unmodified", schedule=None):
    validate_input() >> summarize()
'''

PIPESHIELD_DAG = '''
from airflow.sdk import DAG, task

@task
def train_model():
    from pipeshield.lineage import attributes as A, lineage_span
    with lineage_span("train", {A.STAGE: "train", A.DATASET_SHA256: "ab" * 32}):
        pass

with DAG("lineage_pipeshield", schedule=None):
    train_model()
'''


def _reap_group(pgid: int, grace: float = 60.0) -> None:
    """The scheduler and triggerer outlive ``standalone`` on SIGTERM for a while: wait, then SIGKILL."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _api(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/api/v2{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _until(what: str, check: Any, timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(1.0)
    raise TimeoutError(f"{what} not reached within {timeout}s; standalone log tail:\n{log.read_text()[-4000:]}")


def _run_dag(base: str, dag_id: str, log: Path) -> str:
    _until(f"{dag_id} parsed", lambda: _api(base, "GET", f"/dags/{dag_id}")[0] == 200, 240, log)
    assert _api(base, "PATCH", f"/dags/{dag_id}", {"is_paused": False})[0] == 200
    status, run = _api(base, "POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
    assert status == 200, run
    return run["dag_run_id"]


def _run_state(base: str, dag_id: str, run_id: str) -> str | None:
    status, run = _api(base, "GET", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
    state = run.get("state") if status == 200 else None
    return state if state in ("success", "failed") else None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dag_runs_are_single_traces_with_pipeshield_spans_under_worker_spans(otlp_receiver, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "unmodified.py").write_text(textwrap.dedent(UNMODIFIED_DAG))
    (home / "dags" / "with_pipeshield.py").write_text(textwrap.dedent(PIPESHIELD_DAG))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow …`
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__TRACES__OTEL_ON": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "OTEL_TRACES_EXPORTER": "otlp_proto_http",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "PIPESHIELD_HOME": str(tmp_path / "pipeshield-home"),
        "VAULT_TOKEN": SECRET,
    }
    log = tmp_path / "standalone.log"
    groups: list[int] = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [_reap_group(g) for g in groups])  # after running() sent SIGTERM to the group
        standalone = stack.enter_context(
            running([AIRFLOW, "standalone"], f"{base}/api/v2/monitor/health", log, env=env, cwd=home, timeout=420))
        groups.append(standalone.pid)
        runs = {dag_id: _run_dag(base, dag_id, log) for dag_id in ("lineage_unmodified", "lineage_pipeshield")}
        for dag_id, run_id in runs.items():
            state = _until(f"{dag_id} finished", lambda: _run_state(base, dag_id, run_id), 420, log)
            assert state == "success", log.read_text()[-4000:]
        spans = otlp_receiver.wait_for(
            lambda s: {"dag_run.lineage_unmodified", "dag_run.lineage_pipeshield", "pipeshield.train"}
            <= {x["name"] for x in s}, 180)

    by_name = {s["name"]: s for s in spans}
    for dag_id, tasks in {"lineage_unmodified": ("validate_input", "summarize"),
                          "lineage_pipeshield": ("train_model",)}.items():
        trace_id = by_name[f"dag_run.{dag_id}"]["trace_id"]
        for task_id in tasks:
            assert by_name[f"task_run.{task_id}"]["trace_id"] == trace_id
            worker = by_name[f"worker.{task_id}"]
            assert worker["trace_id"] == trace_id
            assert worker["attributes"][A.AIRFLOW_DAG_ID] == dag_id
            assert worker["attributes"][A.AIRFLOW_TASK_ID] == task_id
            assert worker["attributes"][A.AIRFLOW_RUN_ID] == runs[dag_id]
            assert {"name": A.EVENT_TASK_FINISHED, "attributes": {A.TASK_STATE: "success"}} in worker["events"]

    # the unmodified DAG's tasks carry the listener's attributes
    validate = by_name["worker.validate_input"]["attributes"]
    assert validate[A.STAGE] == "validate"
    assert validate[A.INLETS] == ["file:///data/raw.csv"] and validate[A.OUTLETS] == ["file:///data/clean.csv"]
    assert by_name["worker.summarize"]["attributes"][A.STAGE] == "other"

    # pipeshield spans are children of the worker span, in the DAG run's trace
    train, worker = by_name["pipeshield.train"], by_name["worker.train_model"]
    assert (train["trace_id"], train["parent_span_id"]) == (worker["trace_id"], worker["span_id"])
    assert train["attributes"][A.STAGE] == "train"

    # the ledger, attached by the listener inside the task processes, holds the same lineage spans
    with Ledger(f"sqlite:///{tmp_path / 'pipeshield-home' / 'lineage.db'}") as ledger:
        recorded = {s.name: s for s in ledger.all_spans()}
        rows = json.dumps(ledger.raw_rows())
    assert {"worker.validate_input", "worker.summarize", "worker.train_model", "pipeshield.train"} <= set(recorded)
    assert recorded["pipeshield.train"].parent_span_id == worker["span_id"]

    exported = b"".join(otlp_receiver.raw)
    assert SECRET.encode() not in exported and SECRET not in rows
