"""Poisoning-detection portfolio run as a pre-training gate.

Each check is reported on its own, cheapest first, with its own calibrated threshold; the batch
fails when any check fires, and the rows to quarantine are the union of the checks' flagged rows.
Scores of different checks are never blended into one decision.

With a trusted ``reference`` (the last approved snapshot or a curated holdout):

* ``schema``, ``provenance`` (row-hash manifest diff: new / deleted / changed rows), ``duplicates``
  (exact and near, above all with conflicting labels): deterministic rules;
* ``reference_label`` (1 - p(given label) under a model trained on the reference only) and
  ``reference_novelty`` (IsolationForest on the reference): per-row calibrated p-values and a
  pooled-threshold Fisher count test against held-out reference rows;
* ``feature_drift`` (KS / chi-squared) and ``classifier_drift`` (two-sample classifier test): gross
  drift only.

Without a reference: ``oof_label_issues`` (cleanlab ``find_label_issues`` on out-of-fold
predictions), ``knn_label_agreement``, ``isolation_forest`` (global and per class),
``spectral_signatures`` and ``trigger_mining``.

Example::

    report = run_poisoning_checks(incoming, label_column="y", reference=approved)
    if report.verdict == "fail":
        clean, quarantine = report.split(incoming)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pipeshield.checks.errors import (
    CheckConfigError,
    DataCheckError,
    EmptyDataError,
    MissingLabelColumnError,
    MissingValuesError,
    SchemaMismatchError,
    UnsupportedFeatureError,
)
from pipeshield.checks.poisoning._config import CHECK_NAMES, CheckSettings, PoisoningConfig
from pipeshield.checks.poisoning._context import Context
from pipeshield.checks.poisoning._drift import classifier_drift_check, feature_drift_check
from pipeshield.checks.poisoning._integrity import duplicates_check, provenance_check, schema_check
from pipeshield.checks.poisoning._prepare import prepare
from pipeshield.checks.poisoning._reference import reference_label_check, reference_novelty_check
from pipeshield.checks.poisoning._report import CheckResult, PoisoningReport
from pipeshield.checks.poisoning._unreferenced import (
    isolation_forest_check,
    isolation_forest_per_class_check,
    knn_label_agreement_check,
    oof_label_issues_check,
    spectral_signatures_check,
    trigger_mining_check,
)
from pipeshield.datasets import table_digest

__all__ = [
    "CHECK_NAMES",
    "CheckConfigError",
    "CheckResult",
    "CheckSettings",
    "DataCheckError",
    "EmptyDataError",
    "MissingLabelColumnError",
    "MissingValuesError",
    "PoisoningConfig",
    "PoisoningReport",
    "SchemaMismatchError",
    "UnsupportedFeatureError",
    "run_poisoning_checks",
]

_CHECKS: dict[str, Callable[[Context], CheckResult]] = {
    "schema": schema_check,
    "provenance": provenance_check,
    "duplicates": duplicates_check,
    "feature_drift": feature_drift_check,
    "reference_novelty": reference_novelty_check,
    "reference_label": reference_label_check,
    "knn_label_agreement": knn_label_agreement_check,
    "isolation_forest": isolation_forest_check,
    "isolation_forest_per_class": isolation_forest_per_class_check,
    "spectral_signatures": spectral_signatures_check,
    "trigger_mining": trigger_mining_check,
    "oof_label_issues": oof_label_issues_check,
    "classifier_drift": classifier_drift_check,
}
_NEEDS_REFERENCE = {"feature_drift", "reference_novelty", "reference_label", "classifier_drift"}
_UNREFERENCED = {"knn_label_agreement", "isolation_forest", "isolation_forest_per_class",
                 "spectral_signatures", "oof_label_issues"}


def run_poisoning_checks(incoming: pd.DataFrame, *, label_column: str, reference: pd.DataFrame | None = None,
                         config: PoisoningConfig | None = None) -> PoisoningReport:
    """Run the portfolio on ``incoming`` (optionally against a trusted ``reference`` with the same columns).

    Raises a :class:`~pipeshield.checks.errors.DataCheckError` subclass naming the problem for input
    the checks cannot handle (no label column, schema mismatch, empty data, missing values,
    unsupported dtypes); nothing is computed in that case.
    """
    config = config or PoisoningConfig()
    if not isinstance(config, PoisoningConfig):
        raise CheckConfigError(f"config: expected PoisoningConfig, got {type(config).__name__}")
    data = prepare(incoming, reference, label_column, config)
    names = _selected(config, has_reference=data.X_ref is not None)
    ctx = Context(data, incoming, reference, label_column, config,
                  n_count_tests=len([n for n in names if n.startswith("reference_")]),
                  n_drift_tests=len([n for n in names if n.endswith("_drift")]))
    results = []
    with threadpool_limits(limits=config.max_threads):
        for name in names:
            started = time.perf_counter()
            result = _CHECKS[name](ctx)
            if not result.seconds:
                result = _with_seconds(result, time.perf_counter() - started)
            results.append(result)
    return PoisoningReport(
        checks=tuple(results), n_rows=len(incoming),
        n_reference_rows=0 if reference is None else len(reference), label_column=label_column,
        incoming_digest=table_digest(incoming),
        reference_digest=None if reference is None else table_digest(reference),
        row_scores=_row_scores(results, len(incoming)), config=config.to_dict())


def _selected(config: PoisoningConfig, has_reference: bool) -> list[str]:
    run_unreferenced = config.unreferenced_checks == "always" or (
        config.unreferenced_checks == "auto" and not has_reference)
    names = []
    for name in CHECK_NAMES:
        if not config.enabled(name):
            continue
        if name in _NEEDS_REFERENCE and not has_reference:
            continue
        if name in _UNREFERENCED and not run_unreferenced:
            continue
        names.append(name)
    return names


def _row_scores(results: list[CheckResult], n: int) -> np.ndarray:
    """Review order of rows: decisions first, never a blend of raw scores.

    With a reference: primary key, the number of fired checks flagging the row. Ties are broken by
    the row's discovery level: each reference-calibrated check turns its per-row p-values into
    Benjamini-Hochberg q-values over the batch (the smallest false-discovery rate at which that
    check would quarantine the row), and the row takes its smallest q-value over the checks
    (Bonferroni over the checks), then its smallest p-value. A check that sees nothing in the batch
    has q-values near 1 for every row and drops out by itself, whatever its raw p-values; no batch
    evidence or weights are needed, which is what small batches lack. The result is scaled into
    [0, 1) by rank. Without a reference: the number of checks flagging the row, ties broken by the
    out-of-fold label-issue rank."""
    calibrated = [r for r in results if r.row_p_values is not None and r.role == "reference"]
    votes = np.zeros(n)
    if not calibrated:
        for r in results:
            votes[list(r.flagged_rows)] += 1.0
        tie = next((r.scores for r in results if r.name == "oof_label_issues" and r.scores is not None), None)
        return votes + (0.0 if tie is None else np.argsort(np.argsort(tie)) / max(1, n))
    for r in results:
        if r.fired:
            votes[list(r.flagged_rows)] += 1.0
    p = np.vstack([np.clip(r.row_p_values, 0.0, 1.0) for r in calibrated])
    q = np.min(np.vstack([_bh_q_values(row) for row in p]), axis=0) * len(calibrated)
    p_min = p.min(axis=0)
    order = np.lexsort((-p_min, -q))  # ascending suspicion: larger q first, then larger p
    step = np.r_[False, (np.diff(q[order]) != 0) | (np.diff(p_min[order]) != 0)]
    rank = np.empty(n)
    rank[order] = np.cumsum(step)  # dense rank: rows with the same evidence stay tied
    return votes + rank / n


def _bh_q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of one check over the batch."""
    n = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.minimum(adjusted, 1.0)
    return q


def _with_seconds(result: CheckResult, seconds: float) -> CheckResult:
    return dataclasses.replace(result, seconds=seconds)
