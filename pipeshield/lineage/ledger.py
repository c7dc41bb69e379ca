"""The lineage ledger: an OTel ``SpanExporter`` that keeps lineage spans in a SQL store, and its reader.

A span is a lineage span when its name starts with ``pipeshield.`` or it carries a ``pipeshield.*``
attribute (Airflow's ``worker.<task>`` spans get those from the listener). Only ``pipeshield.*`` and
``airflow.*`` attributes are stored: whatever else other libraries put on a span stays out.

The store is any SQLAlchemy URL: a SQLite file by default (``<PIPESHIELD_HOME>/lineage.db``), or
e.g. ``postgresql+psycopg://…`` for a team.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pipeshield.config import Settings
from pipeshield.lineage import attributes as A
from pipeshield.lineage.errors import LedgerError

log = logging.getLogger(__name__)

KEPT_PREFIXES = ("pipeshield.", "airflow.")
LEDGER_FILE = "lineage.db"
LEDGER_OFF = "off"
"""``PIPESHIELD_LEDGER_URL=off`` keeps :func:`~pipeshield.lineage.install_ledger` from attaching a ledger."""

_metadata = sa.MetaData()
spans_table = sa.Table(
    "pipeshield_lineage_spans",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trace_id", sa.String(32), nullable=False, index=True),
    sa.Column("span_id", sa.String(16), nullable=False),
    sa.Column("parent_span_id", sa.String(16)),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("service", sa.String(256)),
    sa.Column("start_time_ns", sa.BigInteger),
    sa.Column("end_time_ns", sa.BigInteger),
    sa.Column("status", sa.String(16)),
    sa.Column("prediction_id", sa.String(64), index=True),
    sa.Column("model_name", sa.String(256)),
    sa.Column("model_version", sa.String(64)),
    sa.Column("model_digest", sa.String(128), index=True),
    sa.Column("dataset_sha256", sa.String(64), index=True),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("links", sa.Text, nullable=False),
)


def default_ledger_url(settings: Settings | None = None) -> str:
    """``PIPESHIELD_LEDGER_URL`` when set, else a SQLite file under ``Settings.home``."""
    settings = settings or Settings.load()
    if settings.ledger_url:
        return settings.ledger_url
    return f"sqlite:///{Path(settings.home) / LEDGER_FILE}"


def _engine(url: str) -> sa.Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise LedgerError(f"invalid ledger URL: {exc}") from None
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:  # several task processes write one file
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _open(url: str) -> sa.Engine:
    engine = _engine(url)
    try:
        _metadata.create_all(engine)
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise LedgerError(f"cannot open the lineage ledger at {engine.url!r}: {type(exc).__name__}") from None
    return engine


def is_lineage_span(span: ReadableSpan) -> bool:
    if span.name.startswith("pipeshield."):
        return True
    return any(key.startswith("pipeshield.") for key in (span.attributes or {}))


def _kept(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in (attributes or {}).items()
            if k.startswith(KEPT_PREFIXES)}


def _row(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    attributes = _kept(span.attributes)
    parent = span.parent
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name[:256],
        "service": str(span.resource.attributes.get("service.name", ""))[:256] if span.resource else None,
        "start_time_ns": span.start_time,
        "end_time_ns": span.end_time,
        "status": span.status.status_code.name,
        "prediction_id": attributes.get(A.PREDICTION_ID),
        "model_name": attributes.get(A.MODEL_NAME),
        "model_version": _text_or_none(attributes.get(A.MODEL_VERSION)),
        "model_digest": attributes.get(A.MODEL_DIGEST),
        "dataset_sha256": attributes.get(A.DATASET_SHA256),
        "attributes": json.dumps(attributes, sort_keys=True),
        "events": json.dumps([{"name": e.name, "attributes": _kept(e.attributes)} for e in span.events]),
        "links": json.dumps([
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}",
             "attributes": _kept(link.attributes)}
            for link in span.links
        ]),
    }


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class LedgerExporter(SpanExporter):
    """Writes lineage spans to the ledger store; other spans are ignored. Never raises into the SDK."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_ledger_url()
        self._engine = _open(self.url)
        self._lock = threading.Lock()
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        rows = [_row(span) for span in spans if is_lineage_span(span)]
        if not rows:
            return SpanExportResult.SUCCESS
        try:
            with self._lock, self._engine.begin() as connection:
                connection.execute(spans_table.insert(), rows)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("pipeshield ledger: could not record %d span(s): %s", len(rows), type(exc).__name__)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True
        self._engine.dispose()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclasses.dataclass(frozen=True)
class LedgerSpan:
    """One recorded lineage span."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service: str | None
    start_time_ns: int | None
    end_time_ns: int | None
    status: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]


class Ledger:
    """Reads the ledger store."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_ledger_url()
        self._engine = _open(self.url)

    @property
    def url_display(self) -> str:
        """The store URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _select(self, *where: sa.ColumnElement[bool]) -> list[LedgerSpan]:
        query = sa.select(spans_table).where(*where).order_by(spans_table.c.start_time_ns, spans_table.c.id)
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the lineage ledger: {type(exc).__name__}") from None
        return [
            LedgerSpan(
                trace_id=r["trace_id"], span_id=r["span_id"], parent_span_id=r["parent_span_id"], name=r["name"],
                service=r["service"], start_time_ns=r["start_time_ns"], end_time_ns=r["end_time_ns"],
                status=r["status"], attributes=json.loads(r["attributes"]), events=json.loads(r["events"]),
                links=json.loads(r["links"]),
            )
            for r in rows
        ]

    def all_spans(self) -> list[LedgerSpan]:
        return self._select()

    def prediction(self, prediction_id: str) -> LedgerSpan | None:
        found = self._select(spans_table.c.prediction_id == prediction_id)
        return found[-1] if found else None

    def trace(self, trace_id: str) -> list[LedgerSpan]:
        return self._select(spans_table.c.trace_id == trace_id.lower())

    def by_model_digest(self, digest: str) -> list[LedgerSpan]:
        return self._select(spans_table.c.model_digest == digest.lower())

    def by_dataset_sha256(self, sha256: str) -> list[LedgerSpan]:
        return self._select(spans_table.c.dataset_sha256 == sha256.lower())

    def raw_rows(self) -> list[dict[str, Any]]:
        """Every stored row as plain values (for audits and the secret-hygiene test)."""
        with self._engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(spans_table)).mappings().all()]
