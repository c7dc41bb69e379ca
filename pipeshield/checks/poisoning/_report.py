"""Results: one ``CheckResult`` per check and the ``PoisoningReport`` that holds them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import pandas as pd

Role = Literal["integrity", "reference", "unreferenced", "drift"]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What one check found. Row positions are 0-based positions in the incoming frame."""

    name: str
    role: Role
    fired: bool
    """The check failed the batch (its batch test rejected, or a deterministic rule was broken)."""
    p_value: float | None = None
    """Batch-test p-value (``None`` for deterministic checks and skipped tests)."""
    threshold: float | None = None
    """What ``p_value`` (or the deterministic count) was compared with."""
    statistics: dict[str, Any] = dataclasses.field(default_factory=dict)
    flagged_rows: tuple[int, ...] = ()
    """Rows this check flags on their own (calibrated per-row threshold)."""
    scores: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    """Per-row suspicion score, higher = more suspicious (raw scale of this check)."""
    row_p_values: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    """Per-row p-value calibrated on the trusted reference (reference checks only)."""
    skipped: str | None = None
    """Why the check (or its batch test) did not run."""
    seconds: float = 0.0

    def to_dict(self, include_scores: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "fired": self.fired,
            "p_value": _safe(self.p_value),
            "threshold": _safe(self.threshold),
            "statistics": {k: _safe(v) for k, v in self.statistics.items()},
            "n_flagged": len(self.flagged_rows),
            "flagged_rows": [int(i) for i in self.flagged_rows],
            "skipped": self.skipped,
            "seconds": round(self.seconds, 4),
        }
        if include_scores and self.scores is not None:
            out["scores"] = [_safe(float(s)) for s in self.scores]
        if include_scores and self.row_p_values is not None:
            out["row_p_values"] = [_safe(float(p)) for p in self.row_p_values]
        return out


@dataclasses.dataclass(frozen=True)
class PoisoningReport:
    """The portfolio's result: each check on its own, the batch verdict and the rows to quarantine."""

    checks: tuple[CheckResult, ...]
    n_rows: int
    n_reference_rows: int
    label_column: str
    incoming_digest: str
    """SHA-256 over the incoming rows' canonical hashes (``pipeshield.datasets.table_digest``)."""
    reference_digest: str | None
    row_scores: np.ndarray = dataclasses.field(repr=False, compare=False)
    """Review order of rows (higher first): the number of fired checks flagging the row, ties broken by
    the row's discovery level (smallest Benjamini-Hochberg q-value over the reference-calibrated
    checks, then smallest p-value), or without a reference by the out-of-fold label-issue rank."""
    config: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def fired(self) -> tuple[str, ...]:
        """Names of the checks that failed the batch."""
        return tuple(c.name for c in self.checks if c.fired)

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "fail" if self.fired else "pass"

    @property
    def flagged_rows(self) -> tuple[int, ...]:
        """Union of every check's flagged rows: the rows to quarantine (sorted positions)."""
        rows: set[int] = set()
        for check in self.checks:
            rows.update(check.flagged_rows)
        return tuple(sorted(rows))

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r} in this report (ran: {[c.name for c in self.checks]})")

    def quarantine_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[list(self.flagged_rows)] = True
        return mask

    def split(self, incoming: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(clean, quarantine)`` parts of the frame this report was computed on."""
        if len(incoming) != self.n_rows:
            raise ValueError(f"frame has {len(incoming)} rows, the report was computed on {self.n_rows}")
        mask = self.quarantine_mask()
        return incoming.iloc[~mask], incoming.iloc[mask]

    def to_dict(self, include_scores: bool = False) -> dict[str, Any]:
        """JSON-safe dict (per-row scores only when asked for)."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "fired": list(self.fired),
            "n_rows": self.n_rows,
            "n_reference_rows": self.n_reference_rows,
            "label_column": self.label_column,
            "incoming_sha256": self.incoming_digest,
            "reference_sha256": self.reference_digest,
            "n_flagged": len(self.flagged_rows),
            "flagged_rows": [int(i) for i in self.flagged_rows],
            "checks": [c.to_dict(include_scores) for c in self.checks],
            "config": self.config,
        }
        if include_scores:
            out["row_scores"] = [_safe(float(s)) for s in self.row_scores]
        return out

    def summary(self) -> str:
        """A few human-readable lines: the verdict, then one line per check."""
        head = (f"poisoning checks: {self.verdict.upper()} - {self.n_rows} rows"
                f" ({self.n_reference_rows} reference), {len(self.flagged_rows)} flagged")
        if self.fired:
            head += f"; fired: {', '.join(self.fired)}"
        lines = [head]
        for c in self.checks:
            state = "FIRED" if c.fired else ("skipped" if c.skipped and c.p_value is None else "ok")
            detail = f"p={c.p_value:.2g} (<= {c.threshold:.2g} fires)" if c.p_value is not None and c.threshold else ""
            if c.skipped:
                detail = (detail + "; " if detail else "") + c.skipped
            lines.append(f"  {c.name:<28} {state:<7} flagged={len(c.flagged_rows):<6} {detail}".rstrip())
        return "\n".join(lines)


def _safe(value: Any) -> Any:
    """JSON-safe scalar: numpy types to Python, NaN/inf to None."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    return value
