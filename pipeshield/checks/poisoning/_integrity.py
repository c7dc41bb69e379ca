"""Deterministic checks: schema, provenance (row-hash manifest diff) and duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeshield.checks.errors import CheckConfigError
from pipeshield.checks.poisoning._context import Context
from pipeshield.checks.poisoning._report import CheckResult
from pipeshield.datasets import canonical_row_hashes


def schema_check(ctx: Context) -> CheckResult:
    """Fires on label values or category values the reference never had (dtype changes are noted)."""
    notes = ctx.data.schema_notes
    stats = {
        "feature_columns": len(ctx.data.feature_columns),
        "categorical_columns": ctx.data.categorical_columns,
        "dtype_changes": notes["dtype_changes"],
        "unseen_categories": notes["unseen_categories"],
        "new_labels": [str(v) for v in notes["new_labels"]],
    }
    if not ctx.has_reference:
        return CheckResult("schema", "integrity", False, statistics=stats,
                           skipped="no reference: only the input rules were checked")
    y_new = np.zeros(len(ctx.data.y), dtype=bool)
    if notes["new_labels"]:
        new = {ctx.data.classes.index(v) for v in notes["new_labels"]}
        y_new = np.isin(ctx.data.y, list(new))
    for column, values in notes["unseen_categories"].items():
        y_new |= ctx.incoming[column].astype(str).isin(values).to_numpy()
    fired = bool(notes["new_labels"] or notes["unseen_categories"])
    return CheckResult("schema", "integrity", fired, threshold=0, statistics=stats,
                       flagged_rows=tuple(np.flatnonzero(y_new).tolist()))


def provenance_check(ctx: Context) -> CheckResult:
    """Diff the incoming rows' canonical SHA-256s against the reference manifest."""
    if not ctx.has_reference:
        return CheckResult("provenance", "integrity", False, skipped="no reference manifest to diff against")
    if not (ctx.reference is not None):
        raise CheckConfigError("this check needs a trusted reference batch")
    inc = canonical_row_hashes(ctx.incoming).to_numpy(dtype=object)
    ref = canonical_row_hashes(ctx.reference).to_numpy(dtype=object)
    ref_set, inc_set = set(ref), set(inc)
    new_mask = np.array([h not in ref_set for h in inc], dtype=bool)
    deleted = len(ref_set - inc_set)
    changed_mask = np.zeros(len(inc), dtype=bool)
    keys = list(ctx.config.key_columns)
    stats: dict[str, object] = {"new_rows": int(new_mask.sum()), "unchanged_rows": int((~new_mask).sum()),
                                "deleted_rows": deleted}
    if keys:
        ref_keys = _key_strings(ctx.reference, keys)
        inc_keys = _key_strings(ctx.incoming, keys)
        ref_by_key = dict(zip(ref_keys, ref))
        changed_mask = np.array([k in ref_by_key and ref_by_key[k] != h for k, h in zip(inc_keys, inc)])
        stats["duplicate_keys_incoming"] = int(pd.Series(inc_keys).duplicated().sum())
        stats["new_rows"] = int((new_mask & ~changed_mask).sum())
    stats["changed_rows"] = int(changed_mask.sum())
    fired = bool(changed_mask.any() or (ctx.config.expect_reference_rows and deleted))
    return CheckResult("provenance", "integrity", fired, threshold=0, statistics=stats,
                       flagged_rows=tuple(np.flatnonzero(changed_mask).tolist()))


def duplicates_check(ctx: Context) -> CheckResult:
    """Exact and near duplicates of the features; above all, duplicates whose labels conflict.

    A group that contains a reference row trusts that row's label: only incoming rows that disagree
    with it are flagged. Without a trusted member every row of a conflicting group is flagged.
    Redundant exact copies inside the incoming batch (every occurrence after the first) are flagged too.
    """
    X, y = ctx.data.X, ctx.data.y
    n = len(y)
    X_all = X if ctx.data.X_ref is None else np.vstack([X, ctx.data.X_ref])
    y_all = y if ctx.data.y_ref is None else np.concatenate([y, ctx.data.y_ref])
    trusted = np.r_[np.zeros(n, bool), np.ones(len(X_all) - n, bool)]
    exact = _group_ids(X_all)
    conflict = _conflicts(exact, y_all, trusted)
    scale = X_all.std(axis=0)
    scale[scale == 0] = 1.0
    width = 0.02  # grid cell in standard deviations: "near" = every feature within ~2% of its spread
    near_conflict = np.zeros(len(X_all), bool)
    for offset in (0.0, 0.5):
        cells = np.floor((X_all - X_all.mean(axis=0)) / scale / width + offset).astype(np.int64)
        near_conflict |= _conflicts(_group_ids(cells), y_all, trusted)
    near_only = near_conflict & ~conflict
    redundant = _redundant(exact[:n]) & ~conflict[:n]
    ref_rate = float(_redundant(exact[n:]).mean()) if len(X_all) > n else 0.0
    inc_rate = float(redundant.mean())
    flagged = conflict[:n] | near_conflict[:n] | redundant
    conflict_groups = len(np.unique(exact[:n][conflict[:n] | near_only[:n]])) if flagged.any() else 0
    stats = {"conflicting_rows": int(conflict[:n].sum()), "near_conflicting_rows": int(near_only[:n].sum()),
             "conflicting_groups": conflict_groups, "redundant_copies": int(redundant.sum()),
             "redundant_fraction": inc_rate, "reference_redundant_fraction": ref_rate}
    too_many_copies = redundant.sum() >= 3 and inc_rate - ref_rate > ctx.config.max_duplicate_fraction
    fired = bool(conflict_groups > ctx.config.max_conflicting_duplicates or too_many_copies)
    scores = 2.0 * (conflict[:n] | near_conflict[:n]) + 1.0 * redundant
    p = np.where(flagged, ctx.row_alpha("duplicates"), 1.0)
    return CheckResult("duplicates", "integrity", fired, threshold=ctx.config.max_conflicting_duplicates,
                       statistics=stats, flagged_rows=tuple(np.flatnonzero(flagged).tolist()),
                       scores=scores, row_p_values=p)


def _key_strings(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    return ["\x1f".join(map(repr, row)) for row in frame[keys].itertuples(index=False, name=None)]


def _group_ids(rows: np.ndarray) -> np.ndarray:
    """Integer id per row; equal rows share an id."""
    rows = np.ascontiguousarray(rows + 0)  # + 0 also folds -0.0 into 0.0
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return np.unique(view, return_inverse=True)[1].ravel()


def _conflicts(groups: np.ndarray, y: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """Incoming rows in a group whose labels disagree (with the trusted label, when the group has one)."""
    frame = pd.DataFrame({"g": groups, "y": y})
    n_labels = frame.groupby("g")["y"].transform("nunique").to_numpy()
    out = np.zeros(len(y), dtype=bool)
    for group in np.unique(groups[n_labels > 1]):
        members = np.flatnonzero(groups == group)
        trusted_labels = y[members[trusted[members]]]
        if trusted_labels.size:
            out[members] = y[members] != np.bincount(trusted_labels).argmax()
        else:
            out[members] = True
    return out & ~trusted


def _redundant(groups: np.ndarray) -> np.ndarray:
    """Every occurrence of a group after its first."""
    return pd.Series(groups).duplicated().to_numpy()
