"""OpenTelemetry lineage spans. Every pipeshield step opens one with :func:`lineage_span`.

Inside an Airflow task the span becomes a child of Airflow's ``worker.<task>`` span automatically
(the global tracer provider is Airflow's). Attribute names live under ``pipeshield.*``; values must
never carry key material, tokens or raw feature values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

TRACER_NAME = "pipeshield"
ATTRIBUTE_PREFIX = "pipeshield."


@contextlib.contextmanager
def lineage_span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[trace.Span]:
    """Open ``pipeshield.<name>`` as the current span; exceptions are recorded and re-raised."""
    attrs = dict(attributes or {})
    bad = [key for key in attrs if not key.startswith(ATTRIBUTE_PREFIX)]
    if bad:
        raise ValueError(f"lineage attributes must start with {ATTRIBUTE_PREFIX!r}: {bad}")
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(f"{ATTRIBUTE_PREFIX}{name}", attributes=attrs) as span:
        yield span
