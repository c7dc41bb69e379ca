"""Lineage spans, the ledger exporter and the tracer-provider setup helper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace

from pipeshield.lineage import Ledger, LedgerExporter, attributes as A, lineage_span, lineage_tags, link_to
from pipeshield.lineage.context import current_traceparent, span_context_of
from pipeshield.lineage.errors import LedgerError

ROOT = Path(__file__).resolve().parent.parent


def test_lineage_span_nests_and_rejects_foreign_attributes(tracing) -> None:
    with lineage_span("outer", {A.STAGE: "train"}):
        with lineage_span("inner", {A.DATASET_SHA256: "ab" * 32}):
            pass
    with pytest.raises(ValueError, match="pipeshield"):
        with lineage_span("bad", {"password": "x"}):
            pass
    spans = {s.name: s for s in tracing.memory.get_finished_spans()}
    assert spans["pipeshield.inner"].parent.span_id == spans["pipeshield.outer"].context.span_id
    assert spans["pipeshield.inner"].context.trace_id == spans["pipeshield.outer"].context.trace_id
    assert "pipeshield.bad" not in spans


def test_traceparent_round_trip_and_links(tracing) -> None:
    assert current_traceparent() is None and lineage_tags() == {}
    with lineage_span("train") as span:
        tags = lineage_tags()
        own = span.get_span_context()
    parsed = span_context_of(tags[A.TAG_TRACEPARENT])
    assert (parsed.trace_id, parsed.span_id) == (own.trace_id, own.span_id)
    assert tags[A.TAG_TRACE_ID] == f"{own.trace_id:032x}"
    with lineage_span("predict", links=link_to(tags[A.TAG_TRACEPARENT], "trained_by")):
        pass
    predict = [s for s in tracing.memory.get_finished_spans() if s.name == "pipeshield.predict"][0]
    assert predict.links[0].context.span_id == own.span_id
    assert span_context_of("garbage") is None and link_to(None, "x") == []


def test_ledger_keeps_lineage_spans_and_only_lineage_attributes(tracing, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    tracing.add(LedgerExporter(url))
    tracer = trace.get_tracer("other")
    with tracer.start_as_current_span("worker.train", attributes={"airflow.dag_id": "d"}) as worker:
        worker.set_attribute(A.STAGE, "train")  # what the listener does to Airflow's span
        with lineage_span("predict", {A.PREDICTION_ID: "p-1", A.MODEL_NAME: "m", A.MODEL_VERSION: "3",
                                      A.MODEL_DIGEST: "cd" * 32}) as span:
            span.set_attribute("http.url", "https://user:hunter2@example.invalid/")  # foreign: not stored
            span.add_event("pipeshield.note", {A.DATASET_SHA256: "ef" * 32, "db.statement": "select secret"})
    with tracer.start_as_current_span("unrelated"):
        pass
    with Ledger(url) as ledger:
        names = [s.name for s in ledger.all_spans()]
        assert sorted(names) == ["pipeshield.predict", "worker.train"]
        prediction = ledger.prediction("p-1")
        assert prediction is not None and prediction.attributes[A.MODEL_VERSION] == "3"
        assert "http.url" not in prediction.attributes
        assert prediction.events == [{"name": "pipeshield.note", "attributes": {A.DATASET_SHA256: "ef" * 32}}]
        assert ledger.by_model_digest("CD" * 32)[0].span_id == prediction.span_id
        assert [s.name for s in ledger.trace(prediction.trace_id)] == ["worker.train", "pipeshield.predict"]  # by start
        worker_row = [s for s in ledger.all_spans() if s.name == "worker.train"][0]
        assert prediction.parent_span_id == worker_row.span_id
        assert ledger.prediction("missing") is None
        assert "hunter2" not in json.dumps(ledger.raw_rows())


def test_ledger_bad_url_names_the_cause(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="invalid ledger URL"):
        Ledger("not a url")
    garbage = tmp_path / "not-a-db"
    garbage.write_bytes(b"\x00not sqlite at all" * 100)
    with pytest.raises(LedgerError, match="cannot open the lineage ledger"):
        Ledger(f"sqlite:///{garbage}")


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=120)


def test_install_ledger_adds_to_an_existing_provider_without_replacing_it(otlp_receiver, tmp_path: Path) -> None:
    """Airflow's case: its provider (with OTLP export) is installed first; ours only adds a processor."""
    result = _python(f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from pipeshield.lineage import install_ledger, lineage_span, flush
        from pipeshield.lineage import attributes as A
        airflow_like = TracerProvider()
        airflow_like.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint="{otlp_receiver.endpoint}/v1/traces")))
        trace.set_tracer_provider(airflow_like)
        first = install_ledger()
        assert install_ledger() is first                       # idempotent
        assert trace.get_tracer_provider() is airflow_like     # not replaced
        with lineage_span("train", {{A.STAGE: "train"}}):
            pass
        flush()
    """, {"PIPESHIELD_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert [s["name"] for s in otlp_receiver.snapshot()] == ["pipeshield.train"]
    with Ledger(f"sqlite:///{tmp_path / 'lineage.db'}") as ledger:
        assert [s.name for s in ledger.all_spans()] == ["pipeshield.train"]
        assert ledger.all_spans()[0].trace_id == otlp_receiver.snapshot()[0]["trace_id"]


def test_install_ledger_without_a_provider_sets_up_otlp_from_the_environment(otlp_receiver, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'team.db'}"
    result = _python("""
        from pipeshield.lineage import install_ledger, lineage_span, flush
        install_ledger()
        with lineage_span("serve"):
            pass
        flush()
    """, {"PIPESHIELD_LEDGER_URL": url, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
          "OTEL_TRACES_EXPORTER": "otlp_proto_http", "OTEL_SERVICE_NAME": "lineage-test"})
    assert result.returncode == 0, result.stderr
    spans = otlp_receiver.snapshot()
    assert [s["name"] for s in spans] == ["pipeshield.serve"]
    assert spans[0]["resource"]["service.name"] == "lineage-test"
    with Ledger(url) as ledger:
        assert [s.service for s in ledger.all_spans()] == ["lineage-test"]


def test_ledger_can_be_switched_off(monkeypatch) -> None:
    from pipeshield.lineage import install_ledger

    monkeypatch.setenv("PIPESHIELD_LEDGER_URL", "off")
    before = trace.get_tracer_provider()
    assert install_ledger() is None and trace.get_tracer_provider() is before
