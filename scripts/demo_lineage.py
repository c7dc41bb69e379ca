"""``lineage_story(story)`` for ``make demo``: gate → train → signed registration → serve → predict →
``pipeshield trace``, then one byte of the training file changes and the trace says so.

Runs on embedded defaults (SQLite MLflow store, local keyring, SQLite ledger) in ``demo-output/lineage``;
``python scripts/demo_lineage.py`` runs it alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def lineage_story(story) -> None:  # noqa: ANN001 - scripts/demo.py's Story
    sys.path.insert(0, str(ROOT))
    from tests.fixtures._lineage_pipeline import write_dataset
    from tests.fixtures.processes import free_port, running

    story.section("Lineage: a prediction traced back to its data, every hop verified")
    work = ROOT / "demo-output" / "lineage"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIPESHIELD_HOME": str(work / "home"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    data = write_dataset(work / "train.csv")
    trained = subprocess.run([sys.executable, "-m", "tests.fixtures._lineage_pipeline", str(data), "demo-model"],
                             capture_output=True, text=True, env=env, cwd=work, timeout=600)
    story.check("gate, train and signed registration ran as one trace", trained.returncode == 0,
                trained.stderr[-300:] if trained.returncode else "")
    if trained.returncode:
        return
    model = json.loads(trained.stdout.strip().splitlines()[-1])
    port = free_port()
    serve = [str(BIN / "pipeshield"), "serve", f"models:/{model['name']}/{model['version']}", "--port", str(port)]
    with running(serve, f"http://127.0.0.1:{port}/ping", work / "serve.log", env=env, cwd=work, timeout=300):
        body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[0.3, -1.2]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            prediction_id = response.headers["X-Pipeshield-Prediction-Id"]
    story.check("pipeshield serve verified the model and answered with a prediction id", bool(prediction_id),
                prediction_id)

    def trace() -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "pipeshield"), "trace", prediction_id], capture_output=True, text=True,
                              env=env, cwd=work, timeout=300)

    clean = trace()
    print("\n".join("    " + line for line in clean.stdout.splitlines()))
    story.check("every hop back to the dataset is verified", clean.returncode == 0 and "[unverifiable]" not in
                clean.stdout and "[mismatched]" not in clean.stdout)
    raw = bytearray(data.read_bytes())
    raw[-2] ^= 1
    data.write_bytes(bytes(raw))
    tampered = trace()
    story.check("one changed byte in the training file: the dataset hop is mismatched, exit 3",
                tampered.returncode == 3 and "file changed since training" in tampered.stdout)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import Story

    demo = Story()
    lineage_story(demo)
    sys.exit(demo.finish())
