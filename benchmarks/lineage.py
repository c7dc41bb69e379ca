"""Lineage costs: per-span cost (batch processor, ledger exporter), ``pipeshield serve`` throughput with
and without prediction spans, and the Airflow listener's overhead per task.

    python benchmarks/lineage.py [--quick]

Prints a table, then as the last line one JSON object with every figure. Target:
``serve_with_spans_ratio`` (requests/s with spans ÷ without, measured in the same run) >= 0.9.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from pipeshield.lineage import attributes as A  # noqa: E402
from pipeshield.lineage.ledger import Ledger, LedgerExporter  # noqa: E402

ATTRS = {A.STAGE: "train", A.DATASET_URI: "file:///data/train.csv", A.DATASET_SHA256: "ab" * 32,
         A.DATASET_ROWS: 1000, A.MODEL_NAME: "m", A.MODEL_VERSION: "1"}


class _Discard(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


def span_cost(count: int, exporter: SpanExporter | None) -> float:
    """µs per lineage span: create + end on the caller's thread, plus the flush of everything queued."""
    provider = TracerProvider()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=count + 1, max_export_batch_size=512))
    tracer = provider.get_tracer("pipeshield")
    start = time.perf_counter()
    for index in range(count):
        with tracer.start_as_current_span("pipeshield.bench", attributes={**ATTRS, A.PREDICTION_ID: str(index)}):
            pass
    provider.force_flush(600_000)
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return elapsed / count * 1e6


def listener_overhead(count: int) -> float:
    """µs per task for the listener's running + success hooks on a real operator under a worker span."""
    from airflow.sdk import DAG, Asset, task

    from pipeshield.plugins import lineage_listener

    with DAG("bench", schedule=None):
        @task(inlets=[Asset("file:///data/raw.csv")], outlets=[Asset("file:///data/clean.csv")])
        def validate_input() -> None:
            return None

        operator = validate_input().operator
    instance = SimpleNamespace(task=operator, dag_id="bench", task_id=operator.task_id, run_id="manual__1",
                               try_number=1, get_template_context=dict)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=2 * count + 1))
    tracer = provider.get_tracer("airflow")
    previous = os.environ.get("PIPESHIELD_LEDGER_URL")
    os.environ["PIPESHIELD_LEDGER_URL"] = "off"  # the ledger's own cost is measured above

    def run(with_listener: bool) -> float:
        start = time.perf_counter()
        for _ in range(count):
            with tracer.start_as_current_span("worker.validate_input"):
                if with_listener:
                    lineage_listener.on_task_instance_running(previous_state=None, task_instance=instance)
                    lineage_listener.on_task_instance_success(previous_state=None, task_instance=instance)
        return time.perf_counter() - start

    try:
        bare, listened = min(run(False) for _ in range(3)), min(run(True) for _ in range(3))
    finally:
        provider.shutdown()
        if previous is None:
            os.environ.pop("PIPESHIELD_LEDGER_URL", None)
        else:
            os.environ["PIPESHIELD_LEDGER_URL"] = previous
    return max(listened - bare, 0.0) / count * 1e6


def _train(work: Path) -> tuple[str, dict[str, str]]:
    from tests.fixtures._lineage_pipeline import write_dataset

    tracking = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PIPESHIELD_HOME": str(work / "home"),
           "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    data = write_dataset(work / "train.csv")
    result = subprocess.run([sys.executable, "-m", "tests.fixtures._lineage_pipeline", str(data), "bench-model"],
                            capture_output=True, text=True, env=env, cwd=work, timeout=600, check=True)
    return tracking, json.loads(result.stdout.strip().splitlines()[-1])


def _rps(port: int, seconds: float) -> float:
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[0.1, -0.2]] * 8}})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    done, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200 or not response.getheader(A.PREDICTION_HEADER):
            raise RuntimeError(f"/invocations answered {response.status}")
        done += 1
    elapsed = time.perf_counter() - start
    connection.close()
    return done / elapsed


def serve_throughput(work: Path, rounds: int, seconds: float) -> dict[str, float]:
    from pipeshield.lineage.verify import default_verifier
    from tests.fixtures.processes import free_port, running

    tracking, model = _train(work)
    uri = f"models:/{model['name']}/{model['version']}"
    env = {**os.environ, "PIPESHIELD_HOME": str(work / "home"), "OTEL_BSP_SCHEDULE_DELAY": "1000",
           "PIPESHIELD_LEDGER_URL": f"sqlite:///{work / 'home' / 'lineage.db'}"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    base = [str(Path(sys.executable).with_name("pipeshield")), "serve", uri, "--tracking-uri", tracking]
    if default_verifier() is None:
        base.append("--unsafe-skip-verification")
    ports = {"with": free_port(), "without": free_port()}
    commands = {"with": base + ["--port", str(ports["with"])],
                "without": base + ["--port", str(ports["without"]), "--no-prediction-spans"]}
    results: dict[str, list[float]] = {"with": [], "without": []}
    with running(commands["with"], f"http://127.0.0.1:{ports['with']}/ping", work / "with.log", env=env, timeout=300), \
         running(commands["without"], f"http://127.0.0.1:{ports['without']}/ping", work / "without.log", env=env,
                 timeout=300):
        for key in ("with", "without"):
            _rps(ports[key], 1.0)  # warm up
        for _ in range(rounds):  # interleaved, so machine noise hits both alike
            for key in ("with", "without"):
                results[key].append(_rps(ports[key], seconds))
    with Ledger(f"sqlite:///{work / 'home' / 'lineage.db'}") as ledger:
        recorded = sum(1 for s in ledger.all_spans() if s.name == "pipeshield.predict")
    with_rps, without_rps = statistics.median(results["with"]), statistics.median(results["without"])
    return {"serve_rps_with_spans": with_rps, "serve_rps_without_spans": without_rps,
            "serve_with_spans_ratio": with_rps / without_rps, "serve_prediction_spans_recorded": recorded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spans = 5_000 if args.quick else 50_000
    rounds, seconds = (3, 2.0) if args.quick else (5, 5.0)
    with tempfile.TemporaryDirectory(prefix="pipeshield-bench-lineage-") as tmp:
        work = Path(tmp)
        bare = span_cost(spans, None)
        batch = span_cost(spans, _Discard())
        ledger_url = f"sqlite:///{work / 'ledger.db'}"
        ledger = span_cost(spans, LedgerExporter(ledger_url))
        with Ledger(ledger_url) as reader:
            ledger_rows = len(reader.raw_rows())
        listener = listener_overhead(500 if args.quick else 5_000)
        serving = serve_throughput(work, rounds, seconds)
    figures = {
        "spans": spans, "span_cost_us": batch, "span_cost_no_processor_us": bare, "ledger_span_cost_us": ledger,
        "ledger_rows_recorded": ledger_rows, "ledger_vs_batch_ratio": ledger / batch,
        "listener_overhead_us_per_task": listener, **serving,
    }
    print(f"{'measure':<42}{'value':>14}")
    for key, value in figures.items():
        print(f"{key:<42}{value:>14.2f}" if isinstance(value, float) else f"{key:<42}{value:>14}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
