"""W3C ``traceparent`` helpers: how runs, model versions and predictions point at each other's spans."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipeshield.lineage import attributes as A

_PROPAGATOR = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, or None when no valid span is active."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The (remote) span context a ``traceparent`` names, or None when it is missing or malformed."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def link_to(traceparent: str | None, relation: str) -> list[Link]:
    """A one-element span-link list to the span ``traceparent`` names (empty when there is none)."""
    span_context = span_context_of(traceparent)
    return [Link(span_context, {"pipeshield.link": relation})] if span_context else []


def lineage_tags() -> dict[str, str]:
    """MLflow tags recording the current span, for a run or a model version created inside it."""
    traceparent = current_traceparent()
    if not traceparent:
        return {}
    return {A.TAG_TRACEPARENT: traceparent, A.TAG_TRACE_ID: traceparent.split("-")[1]}
