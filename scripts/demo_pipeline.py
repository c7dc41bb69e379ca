"""``pipeline_story(story)`` for ``make demo``: the example DAGs of ``dags/`` run for real.

Airflow on SQLite (``airflow db migrate``), a real ``mlflow server`` with the ``signed+sqlite`` registry
store on loopback, and ``airflow dags test`` runs (cluster policies and listener installed):

1. a poisoned batch lands: the untouched ``train_model`` DAG is stopped by the gate the policy inserted;
2. a clean batch: the untouched DAG trains, but its bare ``mlflow.register_model`` is refused (unsigned);
3. ``train_model_secured`` gates, trains, scans, signs and registers the model;
4. one byte of the stored model changes: both deploy DAGs stop before deploy runs;
5. the intact model is deployed and scores the waiting batch; ``pipeshield serve`` answers a request;
6. ``pipeshield trace`` walks that prediction back to its data, every hop verified; after one byte of
   the training snapshot changes, the dataset hop is mismatched.

Works in ``demo-output/pipeline``; ``python scripts/demo_pipeline.py`` runs it alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODEL = "churn-classifier"
DAG_FILES = ("train_model.py", "train_model_secured.py", "deploy_model.py", "deploy_model_secured.py")
_TASK_ORDER = {task: n for n, task in enumerate(("extract", "fetch", "pipeshield_gate__train", "gate",
                                                 "pipeshield_verify__deploy", "train", "register", "deploy", "score"))}


class _Pipeline:
    """The chapter's directories, environment and helpers around ``airflow dags test``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.data = work / "ml-data"
        self.home = work / "home"
        self.airflow_home = work / "airflow"
        self.trusted = work / "trusted-keys"
        self.logs = work / "logs"
        self.env: dict[str, str] = {}
        self.runs = 0

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "airflow"), *args], capture_output=True, text=True, env=self.env,
                              cwd=self.work, timeout=timeout)

    def run_dag(self, dag_id: str, what: str, conf: dict[str, Any] | None = None) -> tuple[dict[str, str], str]:
        """``airflow dags test`` one DAG; returns its task states and where its output was saved."""
        print(f"  ... {what}: airflow dags test {dag_id}", flush=True)
        started = time.monotonic()
        args = ["dags", "test", dag_id] + (["-c", json.dumps(conf)] if conf else [])
        result = self.airflow(*args)
        self.runs += 1
        log = self.logs / f"{self.runs:02d}-{dag_id}.log"
        log.write_text(result.stdout + result.stderr)
        states = self._last_run_states(dag_id)
        shown = ", ".join(f"{task}={state}" for task, state in states.items())
        print(f"      {shown} ({time.monotonic() - started:.0f}s; log {log.relative_to(ROOT)})", flush=True)
        return states, log.read_text()

    def _last_run_states(self, dag_id: str) -> dict[str, str]:
        with sqlite3.connect(self.airflow_home / "airflow.db") as db:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                             (dag_id,)).fetchone()
            if row is None:
                return {}
            rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                              (dag_id, row[0])).fetchall()
        return {task: str(state) for task, state in sorted(rows, key=lambda r: _TASK_ORDER.get(r[0], 99))}

    def report(self, dag_id: str, task_id: str) -> Path | None:
        reports = sorted(self.home.glob(f"reports/{dag_id}/*/{task_id}.json"), key=lambda p: p.stat().st_mtime)
        return reports[-1] if reports else None


def pipeline_story(story: Any) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo_mlflow import _mlflow_server

    from tests.fixtures._example_data import land, prepare

    story.section("The example DAGs secured two ways, run by Airflow (SQLite) against a signed MLflow registry")
    work = ROOT / "demo-output" / "pipeline"
    shutil.rmtree(work, ignore_errors=True)
    p = _Pipeline(work)
    for folder in (p.data, p.home, p.airflow_home / "dags", p.trusted, p.logs, work / "mlflow"):
        folder.mkdir(parents=True)
    for name in DAG_FILES:
        shutil.copy(ROOT / "dags" / name, p.airflow_home / "dags" / name)
    tables = prepare(p.data)
    p.env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPESHIELD_", "AIRFLOW", "VAULT_"))}
    p.env.update(
        AIRFLOW_HOME=str(p.airflow_home), AIRFLOW__CORE__DAGS_FOLDER=str(p.airflow_home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{p.airflow_home / 'airflow.db'}",
        PIPESHIELD_HOME=str(p.home), PIPESHIELD_TRUSTED_KEYS_DIR=str(p.trusted), ML_DATA_DIR=str(p.data),
        ML_MODEL_NAME=MODEL, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        # the installed cluster policies secure the untouched DAGs by their tags
        PIPESHIELD_GATE_TRAIN_TAGS="training", PIPESHIELD_VERIFY_DEPLOY_TAGS="deployment",
    )
    print("  ... airflow db migrate (SQLite)", flush=True)
    migrated = p.airflow("db", "migrate")
    story.check("Airflow metadata DB migrated", migrated.returncode == 0,
                migrated.stderr[-300:] if migrated.returncode else "")
    if migrated.returncode:
        return
    signing_key = _trust_signing_key(p)
    server_env = {"PIPESHIELD_TRUSTED_KEYS_DIR": str(p.trusted), "PIPESHIELD_SIGNING_KEY": signing_key,
                  "PIPESHIELD_HOME": str(work / "mlflow" / "server-home")}
    print("  ... starting mlflow server (signed+sqlite registry store, public key only)", flush=True)
    with _mlflow_server(work / "mlflow", server_env) as url:
        p.env["MLFLOW_TRACKING_URI"] = url
        _train(story, p, land, tables)
        version = _registered_version(url)
        digest = version.tags["pipeshield.signature.root_digest"][:16] if version else ""
        story.check("train_model_secured: gate passed, model scanned, signed and registered", version is not None,
                    f"{MODEL} v{version.version}, root digest {digest}..." if version else "no signed version")
        if version is None:
            return
        _deploy(story, p, url, version)
        prediction_id = _serve(story, p)
        if prediction_id:
            _trace(story, p, prediction_id)
    mlflow_dir = (work / "mlflow").relative_to(ROOT)
    print(f"\n  Where to look:\n    gate reports     {(p.home / 'reports').relative_to(ROOT)}/"
          f"\n    DAG run logs     {p.logs.relative_to(ROOT)}/"
          f"\n    MLflow UI        was {url} during the run; browse it again with\n"
          f"                     .venv/bin/mlflow ui --backend-store-uri sqlite:///{mlflow_dir}/mlflow.db "
          f"--artifacts-destination {mlflow_dir}/artifacts   (http://127.0.0.1:5000)")


def _trust_signing_key(p: _Pipeline) -> str:
    """Create the signing key in the local keyring; the MLflow server and deploy get only its public key."""
    from pipeshield.config import Settings
    from pipeshield.keys import KeyType, open_key_provider

    settings = Settings.load(p.env)
    with open_key_provider(settings) as provider:
        info = provider.create_key(settings.signing_key, KeyType.ECDSA_P256)
        pem = p.trusted / f"{settings.signing_key}.v{info.latest_version}.pem"
        pem.write_text(provider.public_key_pem(settings.signing_key, info.latest_version))
    return settings.signing_key


def _train(story: Any, p: _Pipeline, land: Any, tables: dict[str, Any]) -> None:
    land(p.data, tables["poisoned"])
    states, _ = p.run_dag("train_model", "a poisoned batch (10% labels flipped) reaches the untouched DAG")
    report = p.report("train_model", "pipeshield_gate__train")
    fired = json.loads(report.read_text())["fired"] if report else []
    story.check("untouched train_model: the policy's gate blocks the poisoned batch, training never runs",
                states.get("pipeshield_gate__train") == "failed" and states.get("train") == "upstream_failed"
                and bool(fired), f"fired: {', '.join(fired)}; report {report.relative_to(ROOT) if report else None}")

    land(p.data, tables["clean"])
    states, output = p.run_dag("train_model", "a clean batch reaches the untouched DAG")
    story.check("untouched train_model: the clean batch passes the gate and trains",
                states.get("pipeshield_gate__train") == "success" and states.get("train") == "success")
    refused = "unsigned model version" in output and states.get("register") == "failed"
    reason = next((line.strip() for line in output.splitlines() if "unsigned model version" in line), "")
    story.check("its bare mlflow.register_model is refused by the signed registry", refused,
                reason[reason.find("unsigned"):][:160])

    states, _ = p.run_dag("train_model_secured", "the same clean batch through the explicitly secured DAG")
    report = p.report("train_model_secured", "gate")
    story.check("train_model_secured ran gate -> train -> signed registration",
                set(states.values()) == {"success"} and report is not None,
                f"gate report {report.relative_to(ROOT) if report else None}")


def _registered_version(url: str) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        version = MlflowClient(tracking_uri=url).get_model_version(MODEL, "1")
    except MlflowException:
        return None
    return version if version.tags.get("pipeshield.signature.root_digest") else None


def _deploy(story: Any, p: _Pipeline, url: str, version: Any) -> None:
    from mlflow.tracking import MlflowClient

    location = MlflowClient(tracking_uri=url).get_model_version_download_uri(MODEL, version.version)
    stored = p.work / "mlflow" / "artifacts" / location.split(":", 1)[1].lstrip("/")
    weights = next(path for path in stored.iterdir() if path.stem == "model")
    original = weights.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    weights.write_bytes(bytes(tampered))
    print(f"  ... one byte of {weights.name} changed in the artifact store", flush=True)
    conf = {"model_version": version.version}
    try:
        states, output = p.run_dag("deploy_model_secured", "deploy the tampered model (explicitly secured DAG)", conf)
        reason = next((line.strip() for line in output.splitlines() if "model files differ" in line), "")
        story.check("deploy_model_secured: the tampered model is refused at fetch, deploy never runs",
                    states.get("fetch") == "failed" and states.get("deploy") == "upstream_failed",
                    reason[reason.find("model files differ"):][:120])
        states, _ = p.run_dag("deploy_model", "deploy the tampered model (untouched DAG, verify policy)", conf)
        story.check("untouched deploy_model: pipeshield_verify__deploy refuses it, deploy never runs",
                    states.get("pipeshield_verify__deploy") == "failed" and states.get("deploy") == "upstream_failed")
    finally:
        weights.write_bytes(original)
    print(f"  ... {weights.name} restored", flush=True)
    states, _ = p.run_dag("deploy_model_secured", "deploy the intact model", conf)
    predictions = p.data / "scoring" / "predictions.csv"
    rows = len(predictions.read_text().splitlines()) - 1 if predictions.exists() else 0
    story.check("deploy_model_secured: verified copy deployed, the batch scored", set(states.values()) == {"success"}
                and rows > 0, f"{rows} predictions in {predictions.relative_to(ROOT)}")


def _serve(story: Any, p: _Pipeline) -> str | None:
    from tests.fixtures.processes import free_port, running

    port = free_port()
    command = [str(BIN / "pipeshield"), "serve", f"models:/{MODEL}/1", "--port", str(port)]
    print(f"  ... pipeshield serve models:/{MODEL}/1 (verifies before loading)", flush=True)
    frame = _first_scoring_row(p.data / "scoring" / "batch.csv")
    body = json.dumps({"dataframe_split": frame}).encode()
    with running(command, f"http://127.0.0.1:{port}/ping", p.logs / "serve.log", env=p.env, cwd=p.work, timeout=300):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            prediction_id = response.headers["X-Pipeshield-Prediction-Id"]
            answer = json.loads(response.read())
    story.check("pipeshield serve: the verified model answers with a prediction id", bool(prediction_id),
                f"{answer} id {prediction_id}")
    return prediction_id


def _first_scoring_row(path: Path) -> dict[str, Any]:
    header, first = path.read_text().splitlines()[:2]
    return {"columns": header.split(","), "data": [[float(v) for v in first.split(",")]]}


def _trace(story: Any, p: _Pipeline, prediction_id: str) -> None:
    def trace() -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "pipeshield"), "trace", prediction_id, "--require-verified"],
                              capture_output=True, text=True, env=p.env, cwd=p.work, timeout=300)

    result = trace()
    print("\n".join("    " + line for line in result.stdout.splitlines()))
    story.check("pipeshield trace: prediction -> model -> signature -> run -> dataset -> gate report -> source, "
                "every hop verified", result.returncode == 0 and "[verified]" in result.stdout,
                result.stderr.strip()[-200:] if result.returncode else "")
    snapshot = p.data / "snapshots" / "train.csv"
    raw = bytearray(snapshot.read_bytes())
    raw[-2] ^= 1
    snapshot.write_bytes(bytes(raw))
    result = trace()
    story.check("one changed byte in the training snapshot: the dataset hop is mismatched, exit 3",
                result.returncode == 3 and "file changed since training" in result.stdout)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import Story

    demo = Story()
    pipeline_story(demo)
    sys.exit(demo.finish())
