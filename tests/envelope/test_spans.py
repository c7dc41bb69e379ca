"""Lineage spans of envelope operations: ``pipeshield.*`` names and attributes, never key material."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import io, json, os, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from pipeshield.envelope import decrypt_stream, encrypt_stream
from pipeshield.keys import DataKey, LocalKeyProvider

keys = LocalKeyProvider(sys.argv[1], os.urandom(32))
keys.create_key("k")
seen = {}
original = keys.generate_data_key
def remember(name, **kwargs):
    data_key = original(name, **kwargs)
    seen["dek"], seen["wrapped"] = data_key.plaintext.hex(), data_key.wrapped
    return data_key
keys.generate_data_key = remember
sealed = io.BytesIO()
encrypt_stream(io.BytesIO(b"x" * 300000), sealed, keys, key_name="k", context={"run": "r1"}, chunk_size=1 << 16,
               digests=True)
decrypt_stream(io.BytesIO(sealed.getvalue()), io.BytesIO(), keys, context={"run": "r1"}, digests=True)
spans = [{"name": s.name, "attributes": dict(s.attributes)} for s in exporter.get_finished_spans()]
print(json.dumps({"spans": spans, **seen}))
"""


def test_spans_name_the_operation_and_carry_no_key_material(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "keyring")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    spans = {span["name"]: span["attributes"] for span in out["spans"]}
    assert set(spans) == {"pipeshield.envelope.encrypt", "pipeshield.envelope.decrypt"}
    for attributes in spans.values():
        assert all(name.startswith("pipeshield.") for name in attributes)
        assert attributes["pipeshield.envelope.key_name"] == "k" and attributes["pipeshield.envelope.key_version"] == 1
        assert attributes["pipeshield.envelope.plaintext_size"] == 300000
    assert spans["pipeshield.envelope.encrypt"]["pipeshield.envelope.ciphertext_sha256"] == \
        spans["pipeshield.envelope.decrypt"]["pipeshield.envelope.ciphertext_sha256"]
    text = json.dumps(out["spans"])
    assert out["dek"] not in text and out["wrapped"] not in text and out["wrapped"][9:40] not in text
