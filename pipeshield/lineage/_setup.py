"""Attach the ledger to the global tracer provider without disturbing Airflow's or MLflow's tracing.

Rules (``docs/lineage.md`` explains why):

- When a provider is already installed (Airflow's, with ``[traces] otel_on``), only *add* a
  ``BatchSpanProcessor`` with the ledger exporter to it. Never replace it: the OTel API allows one
  global provider per process, and replacing it detaches Airflow's OTLP export.
- When none is installed (a plain process such as ``pipeshield serve``), install an SDK provider
  with the ledger and, when ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` is set, the ordinary OTLP exporter.
- Calling it again is a no-op for the same store. Never call ``mlflow.set_tracking_uri`` after it in
  a process with ``MLFLOW_USE_DEFAULT_TRACER_PROVIDER=false``: MLflow then resets the global provider.
"""

from __future__ import annotations

import logging
import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from pipeshield.lineage.ledger import LEDGER_OFF, LedgerExporter, default_ledger_url

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_MARK = "_pipeshield_ledgers"


def _otlp_exporter() -> SpanExporter | None:
    """The OTLP exporter the standard OTel environment variables ask for, if any."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip()
    if kind == "otlp_proto_http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter()
    if kind in ("otlp", "otlp_proto_grpc"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        return GrpcExporter()
    return None


def _sdk_provider(service_name: str) -> TracerProvider | None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return provider
    if not isinstance(provider, trace.ProxyTracerProvider):
        log.warning("pipeshield: tracer provider %s is not the OTel SDK's; ledger not attached", type(provider).__name__)
        return None
    new = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)}))
    otlp = _otlp_exporter()
    if otlp is not None:
        new.add_span_processor(BatchSpanProcessor(otlp))
    trace.set_tracer_provider(new)  # a no-op with a warning if someone else won the race
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def install_ledger(url: str | None = None, *, service_name: str = "pipeshield") -> LedgerExporter | None:
    """Record lineage spans of this process in the ledger at ``url`` (default: the configured one).

    Returns the exporter, or None when the ledger is switched off (``PIPESHIELD_LEDGER_URL=off``) or
    the process's provider cannot take processors (a non-SDK provider). Safe to call many times and
    from several threads.
    """
    url = url or default_ledger_url()
    if url == LEDGER_OFF:
        return None
    with _LOCK:
        provider = _sdk_provider(service_name)
        if provider is None:
            return None
        ledgers: dict[str, LedgerExporter] = getattr(provider, _MARK, {})
        if url in ledgers:
            return ledgers[url]
        exporter = LedgerExporter(url)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        ledgers[url] = exporter
        setattr(provider, _MARK, ledgers)
        return exporter


def flush(timeout_millis: int = 30000) -> bool:
    """Flush every span processor of the global provider (call before a short-lived process exits)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    return bool(force_flush(timeout_millis)) if callable(force_flush) else True
