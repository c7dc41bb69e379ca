"""The data gate before training: read the batch, validate it (Great Expectations), run the poisoning
portfolio, write a report, then apply the ``on_flag`` policy.

``on_flag``:

* ``fail`` (default): a flagged batch raises :class:`~pipeshield.errors.DataGateFailed` after the report
  is written; no data output is produced.
* ``quarantine``: the flagged rows (poisoning flags plus rows failing row-level expectations) go to a
  ``quarantine`` file and the rest to a ``clean`` file, so training goes on with the clean rows (a
  batch that passes is written to ``clean`` whole, so training can always read ``clean``). A failed
  table-level expectation (e.g. a missing column) cannot be quarantined and fails the gate; clean and
  quarantine files left by an earlier run are removed first.
* ``warn``: the report records the flags and the batch goes on unchanged.

Bad input (unreadable, empty, no label column, NaNs, reference/incoming schema mismatch, columns or
dtypes that differ from a declared ``schema``) raises a :class:`~pipeshield.errors.PipeshieldError`
subclass naming the problem, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pandas.api import types as ptypes

from pipeshield.checks._tables import (
    DatasetIdentity,
    LoadedTable,
    TableSource,
    local_path,
    read_table,
    table_format,
    write_table,
)
from pipeshield.checks.errors import MissingLabelColumnError, SchemaMismatchError
from pipeshield.checks.poisoning import CheckSettings, PoisoningConfig, PoisoningReport, run_poisoning_checks
from pipeshield.checks.validation import ValidationReport, validate_table
from pipeshield.datasets import sha256_file
from pipeshield.errors import ConfigError, DataGateFailed
from pipeshield.lineage import lineage_span

__all__ = ["DatasetIdentity", "GateResult", "ON_FLAG", "REPORT_FORMAT", "poisoning_config_from_dict", "run_gate"]

OnFlag = Literal["fail", "quarantine", "warn"]
ON_FLAG = ("fail", "quarantine", "warn")
REPORT_FORMAT = "pipeshield.data-gate/1"
_DTYPE_KINDS = {
    "int": ptypes.is_integer_dtype,
    "float": ptypes.is_float_dtype,
    "numeric": lambda d: ptypes.is_numeric_dtype(d) and not ptypes.is_bool_dtype(d),
    "bool": ptypes.is_bool_dtype,
    "str": lambda d: ptypes.is_string_dtype(d) or ptypes.is_object_dtype(d),
    "category": lambda d: isinstance(d, pd.CategoricalDtype),
    "datetime": ptypes.is_datetime64_any_dtype,
}


@dataclasses.dataclass(frozen=True)
class GateResult:
    """What the gate decided and where the evidence is (everything in it is safe to log and to XCom)."""

    verdict: Literal["pass", "fail"]
    """The checks' verdict on the batch."""
    action: Literal["passed", "failed", "quarantined", "warned"]
    """What the gate did about it."""
    fired: tuple[str, ...]
    """Checks that fired, as ``validation:<expectation>(<column>)`` or ``poisoning:<check>``."""
    report_path: Path
    report_sha256: str
    incoming: DatasetIdentity
    reference: DatasetIdentity | None = None
    clean: DatasetIdentity | None = None
    quarantine: DatasetIdentity | None = None
    n_flagged: int = 0

    @property
    def training_data(self) -> DatasetIdentity:
        """The dataset training should use: the clean split after a quarantine, else the incoming batch."""
        return self.clean or self.incoming

    @property
    def datasets(self) -> list[DatasetIdentity]:
        return [d for d in (self.incoming, self.reference, self.clean, self.quarantine) if d is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the operators' XCom value)."""
        return {
            "verdict": self.verdict,
            "action": self.action,
            "fired": list(self.fired),
            "n_flagged": self.n_flagged,
            "report_path": str(self.report_path),
            "report_uri": self.report_path.resolve().as_uri(),
            "report_sha256": self.report_sha256,
            "incoming": self.incoming.to_dict(),
            "reference": self.reference.to_dict() if self.reference else None,
            "clean": self.clean.to_dict() if self.clean else None,
            "quarantine": self.quarantine.to_dict() if self.quarantine else None,
            "clean_path": _path_of(self.clean),
            "training_data": self.training_data.to_dict(),
        }


def run_gate(
    data: TableSource,
    *,
    report_path: str | os.PathLike[str],
    label_column: str | None = "label",
    suite: Any = None,
    reference: TableSource | None = None,
    schema: Mapping[str, str] | None = None,
    on_flag: OnFlag = "fail",
    poisoning: bool = True,
    poisoning_config: PoisoningConfig | None = None,
    clean_path: str | os.PathLike[str] | None = None,
    quarantine_path: str | os.PathLike[str] | None = None,
) -> GateResult:
    """Check ``data`` and apply ``on_flag``; see the module docstring.

    ``suite``: a Great Expectations suite (file path, dict or object), or None to skip validation.
    ``schema``: optional ``{column: kind}`` the batch must match exactly (kinds: int, float, numeric,
    bool, str, category, datetime). ``poisoning=False`` runs validation only (no label needed).
    ``clean_path``/``quarantine_path`` default to files next to the report.
    """
    if on_flag not in ON_FLAG:
        raise ConfigError("on_flag", f"expected one of {', '.join(ON_FLAG)}, got {on_flag!r}")
    if suite is None and not poisoning:
        raise ConfigError("suite", "nothing to check: give a suite, or enable the poisoning checks")
    if poisoning and not label_column:
        raise ConfigError("label_column", "the poisoning checks need the label column's name")
    report_path = Path(report_path)
    if report_path.suffix != ".json":
        raise ConfigError("report_path", f"must end in .json (the summary goes next to it as .txt): {report_path}")
    if on_flag == "quarantine":  # a split left by an earlier run must never pass for this batch's
        for stale in (clean_path, quarantine_path):
            if stale:
                local_path(stale).unlink(missing_ok=True)
    with lineage_span("gate", {"pipeshield.gate.on_flag": on_flag}) as span:
        incoming = read_table(data, "incoming")
        ref = read_table(reference, "reference") if reference is not None else None
        span.set_attributes(_dataset_attributes("pipeshield.dataset", incoming.identity))
        if ref is not None:
            span.set_attributes(_dataset_attributes("pipeshield.reference", ref.identity))
        if schema:
            _check_schema(incoming.frame, schema, "incoming")
        if poisoning:  # cheap input checks first, before the (slower) validation run
            for table, where in ((incoming, "incoming"), (ref, "reference")):
                if table is not None and label_column not in table.frame.columns:
                    raise MissingLabelColumnError(str(label_column), where)
        validation = validate_table(incoming.frame, suite) if suite is not None else None
        poison = None
        if poisoning:
            poison = run_poisoning_checks(incoming.frame, label_column=label_column,
                                          reference=None if ref is None else ref.frame, config=poisoning_config)
        result = _decide_and_write(incoming, ref, validation, poison, on_flag, report_path, suite,
                                   clean_path, quarantine_path)
        span.set_attributes({
            "pipeshield.gate.verdict": result.verdict,
            "pipeshield.gate.action": result.action,
            "pipeshield.gate.fired": list(result.fired),
            "pipeshield.gate.flagged_rows": result.n_flagged,
            "pipeshield.gate.report_uri": result.report_path.resolve().as_uri(),
            "pipeshield.gate.report_sha256": result.report_sha256,
        })
        if result.clean is not None:
            span.set_attributes(_dataset_attributes("pipeshield.clean", result.clean))
        if result.action == "failed":
            raise DataGateFailed(list(result.fired), str(result.report_path))
        return result


def poisoning_config_from_dict(values: Mapping[str, Any] | None) -> PoisoningConfig | None:
    """A ``PoisoningConfig`` from plain JSON-like values (``checks`` as ``{name: {field: value}}``)."""
    if values is None:
        return None
    fields = dict(values)
    fields["checks"] = {name: CheckSettings(**opts) for name, opts in (fields.get("checks") or {}).items()}
    for name in ("quantiles", "key_columns", "exclude_columns"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return PoisoningConfig(**fields)


def _decide_and_write(incoming: LoadedTable, ref: LoadedTable | None, validation: ValidationReport | None,
                      poison: PoisoningReport | None, on_flag: OnFlag, report_path: Path, suite: Any,
                      clean_path: Any, quarantine_path: Any) -> GateResult:
    fired = [f"validation:{o.name}" for o in (validation.failed if validation else [])]
    fired += [f"poisoning:{name}" for name in (poison.fired if poison else ())]
    rows = sorted(set(validation.flagged_rows if validation else []) | set(poison.flagged_rows if poison else ()))
    verdict: Literal["pass", "fail"] = "fail" if fired else "pass"
    table_level = [o.name for o in (validation.failed if validation else []) if not o.row_level]
    if verdict == "pass":
        action = "passed"
    elif on_flag == "warn":
        action = "warned"
    elif on_flag == "quarantine" and not table_level and rows:
        action = "quarantined"
    else:
        action = "failed"

    clean = quarantine = None
    written: list[Path] = []
    try:
        if action == "quarantined" or (on_flag == "quarantine" and action == "passed"):
            fmt = incoming.format if incoming.format != "frame" else "parquet"
            suffix = ".csv" if fmt == "csv" else ".parquet"
            clean_file = local_path(clean_path) if clean_path else report_path.with_name(report_path.stem + ".clean" + suffix)
            quarantine_file = (local_path(quarantine_path) if quarantine_path
                               else report_path.with_name(report_path.stem + ".quarantine" + suffix))
            mask = incoming.frame.index.isin(rows)
            for frame, path in ((incoming.frame[~mask], clean_file), (incoming.frame[mask], quarantine_file)):
                write_table(frame, path, table_format(path))
                written.append(path)
            clean = DatasetIdentity(clean_file.resolve().as_uri(), sha256_file(clean_file), int((~mask).sum()))
            quarantine = DatasetIdentity(quarantine_file.resolve().as_uri(), sha256_file(quarantine_file), int(mask.sum()))
        report = _report(incoming, ref, validation, poison, on_flag, verdict, action, fired, rows, suite,
                         table_level, clean, quarantine)
        report_sha256 = _write_report(report, report_path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return GateResult(verdict, action, tuple(fired), report_path, report_sha256, incoming.identity,
                      ref.identity if ref else None, clean, quarantine, len(rows))


def _report(incoming: LoadedTable, ref: LoadedTable | None, validation: ValidationReport | None,
            poison: PoisoningReport | None, on_flag: str, verdict: str, action: str, fired: list[str],
            rows: list[int], suite: Any, table_level: list[str], clean: DatasetIdentity | None,
            quarantine: DatasetIdentity | None) -> dict[str, Any]:
    lines = [f"data gate: {verdict.upper()} -> {action} (on_flag={on_flag}); {incoming.identity.rows} rows,"
             f" {len(rows)} flagged" + (f"; fired: {', '.join(fired)}" if fired else "")]
    if action == "failed" and on_flag == "quarantine":
        why = f"table-level expectation(s) failed: {', '.join(table_level)}" if table_level else "no rows to quarantine"
        lines.append(f"  quarantine impossible: {why}")
    if clean is not None and quarantine is not None:
        lines.append(f"  clean: {clean.rows} rows -> {clean.uri}; quarantine: {quarantine.rows} rows -> {quarantine.uri}")
    lines += [part.summary() for part in (validation, poison) if part is not None]
    return {
        "format": REPORT_FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verdict": verdict,
        "action": action,
        "on_flag": on_flag,
        "fired": fired,
        "flagged_rows": rows,
        "datasets": {
            "incoming": incoming.identity.to_dict(),
            "reference": ref.identity.to_dict() if ref else None,
            "clean": clean.to_dict() if clean else None,
            "quarantine": quarantine.to_dict() if quarantine else None,
        },
        "suite": _suite_identity(suite),
        "validation": validation.to_dict() if validation else None,
        "poisoning": poison.to_dict() if poison else None,
        "summary": "\n".join(lines),
    }


def _write_report(report: dict[str, Any], path: Path) -> str:
    """Write ``<path>`` (JSON) and ``<path>.txt`` (summary) atomically; returns the JSON's SHA-256."""
    payload = (json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data in ((path.with_suffix(".txt"), (report["summary"] + "\n").encode()), (path, payload)):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return hashlib.sha256(payload).hexdigest()


def _check_schema(frame: pd.DataFrame, schema: Mapping[str, str], where: str) -> None:
    unknown = {c: k for c, k in schema.items() if k not in _DTYPE_KINDS}
    if unknown:
        raise ConfigError("schema", f"unknown kind(s) {unknown}; use {', '.join(_DTYPE_KINDS)}")
    missing = [c for c in schema if c not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in schema]
    wrong = [f"{c!r} is {frame[c].dtype}, expected {k}" for c, k in schema.items()
             if c in frame.columns and not _DTYPE_KINDS[k](frame[c].dtype)]
    problems = ([f"missing column(s) {missing}"] if missing else []) + ([f"extra column(s) {extra}"] if extra else [])
    problems += [f"wrong dtype: {w}" for w in wrong]
    if problems:
        raise SchemaMismatchError(f"the {where} data does not match the declared schema - " + "; ".join(problems))


def _suite_identity(suite: Any) -> dict[str, Any] | None:
    if suite is None:
        return None
    if isinstance(suite, (str, os.PathLike)):
        path = local_path(suite)
        return {"uri": path.resolve().as_uri(), "sha256": sha256_file(path)}
    name = suite.get("name") if isinstance(suite, Mapping) else getattr(suite, "name", None)
    return {"uri": None, "name": name}


def _dataset_attributes(prefix: str, identity: DatasetIdentity) -> dict[str, Any]:
    return {f"{prefix}.uri": identity.uri, f"{prefix}.sha256": identity.sha256, f"{prefix}.rows": identity.rows}


def _path_of(identity: DatasetIdentity | None) -> str | None:
    if identity is None:
        return None
    return str(local_path(identity.uri))
