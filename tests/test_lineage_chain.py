"""Gate → train → signed registration → ``pipeshield serve`` → predict → ``pipeshield trace``, with a
real mlflow server running the signed registry store, real serve and trace processes, OTLP export to a
receiver and the ledger."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeshield.lineage import Ledger
from pipeshield.lineage import attributes as A
from tests.fixtures._lineage_pipeline import write_dataset
from tests.fixtures.processes import free_port, running

ROOT = Path(__file__).resolve().parent.parent
PIPESHIELD = str(Path(sys.executable).with_name("pipeshield"))
FEATURE_A, FEATURE_B = 4.718281, -3.141592  # distinctive raw values that must never be exported
SECRET = "s.pipeshieldTopSecretToken42"


@pytest.fixture
def lineage_env(signed_registry, otlp_receiver, tmp_path: Path) -> dict[str, str]:
    """The pipeline signs with the registry's keyring; serve and trace verify with its public key only."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": signed_registry.url,
        "PIPESHIELD_HOME": str(tmp_path / "home"),
        "PIPESHIELD_KEYRING_DIR": str(signed_registry.keyring_dir),
        "PIPESHIELD_MASTER_KEY": base64.b64encode(signed_registry.master_key).decode(),
        "PIPESHIELD_SIGNING_KEY": signed_registry.key_name,
        "PIPESHIELD_TRUSTED_KEYS_DIR": str(signed_registry.trusted_dir),
        "VAULT_TOKEN": SECRET,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_TRACES_EXPORTER": "otlp_proto_http",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def _predict(url: str) -> tuple[str, dict]:
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[FEATURE_A, FEATURE_B]]}}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers[A.PREDICTION_HEADER], json.loads(response.read())


def _wait_for_prediction(ledger_url: str, prediction_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with Ledger(ledger_url) as ledger:
        while ledger.prediction(prediction_id) is None:
            assert time.monotonic() < deadline, "prediction span never reached the ledger"
            time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.reliability("secret hygiene", "gate -> train -> register -> serve -> predict -> trace: ledger and OTLP",
                         "no Vault token, master key or raw feature value recorded or exported")
def test_prediction_traces_back_to_the_dataset_and_detects_a_changed_byte(
    lineage_env, otlp_receiver, tmp_path: Path, secret_scan, reliability
) -> None:
    data = write_dataset(tmp_path / "train.csv")
    trained = _run([sys.executable, "-m", "tests.fixtures._lineage_pipeline", str(data), "lineage-model"], lineage_env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    model = json.loads(trained.stdout.strip().splitlines()[-1])

    port = free_port()
    serve = [PIPESHIELD, "serve", f"models:/{model['name']}/{model['version']}", "--port", str(port)]
    ledger_url = f"sqlite:///{tmp_path / 'home' / 'lineage.db'}"
    with running(serve, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env=lineage_env, timeout=180):
        prediction_id, output = _predict(f"http://127.0.0.1:{port}")
        assert len(output["predictions"]) == 1 and len(prediction_id) == 32
        _wait_for_prediction(ledger_url, prediction_id)

    traced = _run([PIPESHIELD, "trace", prediction_id, "--json"], lineage_env)
    assert traced.returncode == 0, traced.stdout + traced.stderr
    tree = json.loads(traced.stdout)
    hops = _flatten(tree["tree"])
    [dataset] = [h for h in hops if h["kind"] == "dataset"]
    assert dataset["facts"]["uri"] == data.resolve().as_uri()
    assert dataset["facts"]["sha256"] == dataset["facts"]["rehashed"]
    assert dataset["status"] == "verified"
    assert dataset["facts"]["signed"] is True
    assert {h["kind"] for h in hops} == {"prediction", "model_version", "signature", "training_run", "dataset",
                                         "gate_report", "source"}
    assert tree["fully_verified"], traced.stdout

    # the prediction span links to the training span stored on the model version
    spans = otlp_receiver.snapshot()
    [predict] = [s for s in spans if s["name"] == "pipeshield.predict"]
    [train] = [s for s in spans if s["name"] == "pipeshield.train"]
    assert (predict["links"][0]["trace_id"], predict["links"][0]["span_id"]) == (train["trace_id"], train["span_id"])
    assert predict["attributes"][A.PREDICTION_ID] == prediction_id

    # the same walk from the model version, and from the signed manifest's root digest
    [signature] = [h for h in hops if h["kind"] == "signature"]
    for ref in (f"models:/{model['name']}/{model['version']}", f"sha256:{signature['facts']['manifest_digest']}"):
        by_model = _run([PIPESHIELD, "trace", ref, "--json", "--require-verified"], lineage_env)
        assert by_model.returncode == 0, by_model.stdout + by_model.stderr
        assert json.loads(by_model.stdout)["tree"]["kind"] == "model_version"

    # one byte of the training file changes: the same trace now fails on that hop
    raw = bytearray(data.read_bytes())
    raw[-2] = ord("0") if raw[-2] != ord("0") else ord("1")
    data.write_bytes(bytes(raw))
    tampered = _run([PIPESHIELD, "trace", prediction_id, "--json"], lineage_env)
    assert tampered.returncode == 3, tampered.stdout + tampered.stderr
    [dataset] = [h for h in _flatten(json.loads(tampered.stdout)["tree"]) if h["kind"] == "dataset"]
    assert dataset["status"] == "mismatched" and "file changed" in dataset["detail"]
    text = _run([PIPESHIELD, "trace", prediction_id], lineage_env)
    print(text.stdout)
    assert text.returncode == 3 and "[mismatched]" in text.stdout and str(data.resolve().as_uri()) in text.stdout

    # an edited gate report is caught too
    report = tmp_path / "gate-report.json"
    report.write_bytes(report.read_bytes() + b" ")
    gated = _run([PIPESHIELD, "trace", prediction_id, "--json"], lineage_env)
    [gate] = [h for h in _flatten(json.loads(gated.stdout)["tree"]) if h["kind"] == "gate_report"]
    assert gated.returncode == 3 and gate["status"] == "mismatched" and "report changed" in gate["detail"]

    # nothing exported or recorded carries a secret, key material or a raw feature value
    with Ledger(ledger_url) as ledger:
        recorded = json.dumps(ledger.raw_rows())
    secret_scan.add("vault token", SECRET)
    secret_scan.add("master key", base64.b64decode(lineage_env["PIPESHIELD_MASTER_KEY"]))
    secret_scan.add_all("raw feature value", (str(FEATURE_A), str(FEATURE_B)))
    secret_scan.text("lineage ledger", recorded, kind="ledger rows", units=len(json.loads(recorded)))
    secret_scan.text("OTLP export", b"".join(otlp_receiver.raw), kind="spans exported", units=len(otlp_receiver.snapshot()))
    reliability(observed=secret_scan.describe(), secrets_leaked=len(secret_scan.hits))
    assert secret_scan.hits == [], secret_scan.describe()


def _flatten(hop: dict) -> list[dict]:
    return [hop] + [h for child in hop["children"] for h in _flatten(child)]
