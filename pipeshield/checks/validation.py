"""Run a Great Expectations 1.x suite on a table with an ephemeral context.

The suite is a JSON/YAML file (GX's own suite format: ``name`` plus ``expectations``, each with
``type`` and ``kwargs``), a dict in that format or an ``ExpectationSuite``. Great Expectations is
imported only when a suite is validated (it takes seconds to import). Reports keep counts and row
ids of failing values, never the values themselves.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from pipeshield.checks._tables import TableSource, local_path, read_table
from pipeshield.errors import ExpectationSuiteError

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

_VALUE_KEYS = ("partial_unexpected_list", "unexpected_list", "partial_unexpected_counts", "unexpected_index_query")


@dataclasses.dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result: its type, column, success, failing-row count and ids, observed value."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    unexpected_rows: tuple[int, ...]
    details: dict[str, Any]
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    @property
    def row_level(self) -> bool:
        """True when the failure is pinned to rows (so quarantining those rows removes it)."""
        return self.unexpected_count is not None and self.error is None


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    """The outcome of one suite on one table."""

    suite_name: str
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def flagged_rows(self) -> list[int]:
        return sorted({row for o in self.failed for row in o.unexpected_rows})

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite_name,
            "success": self.success,
            "evaluated": len(self.outcomes),
            "failed": [o.name for o in self.failed],
            "flagged_rows": self.flagged_rows,
            "expectations": [dataclasses.asdict(o) | {"name": o.name} for o in self.outcomes],
        }

    def summary(self) -> str:
        head = f"validation ({self.suite_name}): {len(self.outcomes) - len(self.failed)}/{len(self.outcomes)} expectations passed"
        lines = [head]
        for outcome in self.failed:
            count = "" if outcome.unexpected_count is None else f": {outcome.unexpected_count} unexpected rows"
            lines.append(f"  FAILED {outcome.name}{count}" + (f" (error: {outcome.error})" if outcome.error else ""))
        return "\n".join(lines)


def load_suite(source: Any) -> ExpectationSuite:
    """An ``ExpectationSuite`` from a file (JSON/YAML), a dict, or an existing suite."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    if isinstance(source, gx.ExpectationSuite):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = local_path(source)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ExpectationSuiteError(f"expectation suite {path}: file not found") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ExpectationSuiteError(f"expectation suite {path}: cannot be parsed ({_first_line(exc)})") from None
        where = str(path)
    else:
        data, where = source, "expectation suite"
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise ExpectationSuiteError(f"{where}: expected a mapping with a list under 'expectations'")
    name = str(data.get("name") or (Path(where).stem if where != "expectation suite" else "suite"))
    expectations = []
    for number, entry in enumerate(data["expectations"], 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ExpectationSuiteError(f"{where}: expectation #{number} needs a 'type' string")
        config = ExpectationConfiguration(type=entry["type"], kwargs=entry.get("kwargs") or {}, meta=entry.get("meta"))
        try:
            expectations.append(config.to_domain_obj())
        except Exception as exc:  # GX raises its own types for unknown types and bad kwargs
            raise ExpectationSuiteError(
                f"{where}: expectation #{number} {entry['type']!r} is invalid ({_first_line(exc)})"
            ) from None
    return gx.ExpectationSuite(name=name, expectations=expectations, meta=data.get("meta") or {})


def validate_table(data: TableSource, suite: Any) -> ValidationReport:
    """Validate ``data`` (DataFrame, parquet or CSV path) against ``suite``."""
    frame = data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else read_table(data).frame
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_suite = load_suite(suite)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("pipeshield")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(gx_suite, result_format={"result_format": "COMPLETE"}).to_json_dict()
    outcomes = tuple(_outcome(item) for item in result["results"])
    return ValidationReport(gx_suite.name, bool(result["success"]), outcomes)


def _outcome(item: dict[str, Any]) -> ExpectationOutcome:
    config = item["expectation_config"]
    kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
    result = item.get("result") or {}
    error = _exception_message(item.get("exception_info") or {})
    details = {k: v for k, v in result.items() if k not in _VALUE_KEYS and not k.endswith("index_list")}
    details["kwargs"] = json.loads(json.dumps(kwargs, default=str))
    rows = result.get("unexpected_index_list") or []
    return ExpectationOutcome(
        expectation=config["type"],
        column=kwargs.get("column"),
        success=bool(item["success"]),
        unexpected_count=result.get("unexpected_count"),
        unexpected_rows=tuple(int(r) for r in rows if isinstance(r, (int, float))),
        details=json.loads(json.dumps(details, default=str)),
        error=error,
    )


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX reports one exception dict, or one per metric keyed by metric id."""
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [str(e.get("exception_message")) for e in entries if e.get("raised_exception") or e.get("exception_message")]
    return "; ".join(m.splitlines()[0][:200] for m in messages) or None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
