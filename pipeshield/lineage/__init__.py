"""OpenTelemetry lineage spans. Every pipeshield step opens one with :func:`lineage_span`.

Inside an Airflow task the span becomes a child of Airflow's ``worker.<task>`` span automatically
(the global tracer provider is Airflow's). Attribute names live under ``pipeshield.*``
(:mod:`pipeshield.lineage.attributes`); values must never carry key material, tokens or raw feature
values. :func:`install_ledger` records lineage spans in the ledger (:class:`Ledger` reads it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.trace import Link
from opentelemetry.util.types import AttributeValue

from pipeshield.lineage._setup import flush, install_ledger
from pipeshield.lineage.context import current_traceparent, link_to, lineage_tags
from pipeshield.lineage.ledger import Ledger, LedgerExporter, default_ledger_url

TRACER_NAME = "pipeshield"
ATTRIBUTE_PREFIX = "pipeshield."

__all__ = [
    "ATTRIBUTE_PREFIX", "TRACER_NAME", "Ledger", "LedgerExporter", "current_traceparent", "default_ledger_url",
    "flush", "install_ledger", "lineage_span", "lineage_tags", "link_to",
]


@contextlib.contextmanager
def lineage_span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, links: Sequence[Link] = ()
) -> Iterator[trace.Span]:
    """Open ``pipeshield.<name>`` as the current span; exceptions are recorded and re-raised."""
    attrs = dict(attributes or {})
    bad = [key for key in attrs if not key.startswith(ATTRIBUTE_PREFIX)]
    if bad:
        raise ValueError(f"lineage attributes must start with {ATTRIBUTE_PREFIX!r}: {bad}")
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(f"{ATTRIBUTE_PREFIX}{name}", attributes=attrs, links=links) as span:
        yield span
