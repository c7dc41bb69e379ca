"""OTLP collector down: a process whose work emits lineage spans must neither fail nor stall.

The same child (install the ledger and OTLP export the standard way, encrypt a few files, exit) runs
twice: against a live OTLP receiver (the baseline) and against a closed port. Span export runs on the
SDK's background thread, so the work itself never waits for the collector; the only cost of a dead
collector is the final export at exit, bounded by the exporter timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``,
10 s by default). The bound asserted is relative: the dead-collector run ends within the baseline run
plus that timeout, both counted twice for noise on a shared machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeshield.envelope import decrypt_file
from pipeshield.keys import LocalKeyProvider
from pipeshield.lineage.ledger import Ledger
from tests.fixtures.processes import free_port

EXPORT_TIMEOUT = 3  # seconds: OTEL_EXPORTER_OTLP_TIMEOUT for both runs
FILES = 4

CHILD = """
import json, os, sys, time
from pipeshield.envelope import encrypt_file
from pipeshield.keys import LocalKeyProvider
from pipeshield.lineage import install_ledger
ledger, keyring, master, folder = sys.argv[1:5]
install_ledger(ledger)
provider = LocalKeyProvider(keyring, bytes.fromhex(master))
started = time.monotonic()
for index in range(%d):
    encrypt_file(os.path.join(folder, "plain"), os.path.join(folder, f"out-{index}.pse"), provider,
                 key_name="data", context={"file": str(index)})
print(json.dumps({"step_seconds": time.monotonic() - started}), flush=True)
""" % FILES


def _run(tmp_path: Path, master_key: bytes, endpoint: str, label: str) -> dict:
    folder = tmp_path / label
    folder.mkdir()
    (folder / "plain").write_bytes(os.urandom(200_000))
    ledger = f"sqlite:///{folder / 'ledger.db'}"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "otlp_proto_http",
           "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT), "OTEL_SERVICE_NAME": f"faults-{label}"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CHILD, ledger, str(tmp_path / "keyring"), master_key.hex(),
                           str(folder)], env=env, capture_output=True, text=True, timeout=300)
    total = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    with LocalKeyProvider(tmp_path / "keyring", master_key) as provider:
        for index in range(FILES):
            decrypt_file(folder / f"out-{index}.pse", folder / f"back-{index}", provider, context={"file": str(index)})
            assert (folder / f"back-{index}").read_bytes() == (folder / "plain").read_bytes()
    spans = [s for s in Ledger(ledger).all_spans() if s.name == "pipeshield.envelope.encrypt"]
    return {"total": total, "step": json.loads(done.stdout.strip().splitlines()[-1])["step_seconds"],
            "ledger_spans": len(spans), "stderr": done.stderr}


@pytest.mark.reliability("fault", "OTLP collector down (closed port) while a process encrypts with lineage spans",
                         "the work succeeds and does not wait on export; the process ends within the baseline "
                         "plus the bounded export timeout; the local lineage ledger keeps every span")
def test_collector_down_neither_fails_nor_stalls(tmp_path: Path, master_key: bytes, otlp_receiver,
                                                 reliability) -> None:
    with LocalKeyProvider(tmp_path / "keyring", master_key) as provider:
        provider.create_key("data")
    baseline = _run(tmp_path, master_key, otlp_receiver.endpoint, "baseline")
    received = otlp_receiver.wait_for(lambda spans: sum(s["name"] == "pipeshield.envelope.encrypt" for s in spans) >= FILES, 30)
    assert {s["resource"].get("service.name") for s in received} == {"faults-baseline"}
    down = _run(tmp_path, master_key, f"http://127.0.0.1:{free_port()}", "down")
    assert "Failed to export" in down["stderr"]  # the exporter really tried and gave up
    assert baseline["ledger_spans"] == down["ledger_spans"] == FILES
    # the work never waited on the dead collector: it took less than one export timeout...
    assert down["step"] < EXPORT_TIMEOUT, down["step"]
    # ...and exit (which flushes the last batch) cost at most the bounded export on top of the baseline
    assert down["total"] <= 2 * baseline["total"] + 2 * EXPORT_TIMEOUT, (down["total"], baseline["total"])
    reliability(observed=f"exit 0, {FILES}/{FILES} files decrypt, {down['ledger_spans']} spans in the ledger; "
                         f"process {down['total']:.1f} s vs baseline {baseline['total']:.1f} s "
                         f"(export timeout {EXPORT_TIMEOUT} s); work {down['step']:.2f} s vs {baseline['step']:.2f} s",
                bytes_lost=0)
