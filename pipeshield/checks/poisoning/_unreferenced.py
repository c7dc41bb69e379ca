"""Checks for pipelines without a trusted reference yet. Calibration comes from the batch itself
(robust, majority-clean assumption), so each one fires when it flags more than
``max_flag_fraction`` of the rows; their flags are evidence for review more than proof."""

from __future__ import annotations

import time

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeshield.checks.poisoning._context import Context
from pipeshield.checks.poisoning._report import CheckResult

KNN_DISAGREE = 0.7
"""kNN check: a row is flagged when at most 30% of its neighbours share its label."""
TUKEY_FAR = 3.0
"""Outlier-type checks flag scores above Q3 + 3 IQR of the batch's own scores (Tukey's far out)."""


def oof_label_issues_check(ctx: Context) -> CheckResult:
    """Out-of-fold logistic regression -> cleanlab ``find_label_issues`` (prune_by_noise_rate)."""
    started = time.perf_counter()
    X, y = _standardised(ctx.data.X), ctx.data.y
    counts = np.bincount(y, minlength=ctx.data.n_classes)
    present = counts > 0
    if present.sum() < 2 or counts[present].min() < 2:
        return CheckResult("oof_label_issues", "unreferenced", False,
                           skipped="needs at least two classes with two rows each")
    folds = int(min(5, counts[present].min()))
    codes = np.cumsum(present) - 1  # cleanlab needs labels 0..k-1 without gaps
    yy = codes[y]
    proba = cross_val_predict(LogisticRegression(max_iter=2000), X, yy,
                              cv=StratifiedKFold(folds, shuffle=True, random_state=ctx.config.seed),
                              method="predict_proba")
    # n_jobs=1: cleanlab's process pool forks, which deadlocks in processes with threads (Airflow, OTel, servers)
    mask = find_label_issues(yy, proba, filter_by="prune_by_noise_rate", n_jobs=1)
    scores = 1.0 - get_label_quality_scores(yy, proba, method="self_confidence")
    return _fraction_result(ctx, "oof_label_issues", mask, scores, started)


def knn_label_agreement_check(ctx: Context) -> CheckResult:
    """Fraction of the k nearest neighbours (standardised features) that share the row's label."""
    started = time.perf_counter()
    X, y = _standardised(ctx.data.X), ctx.data.y
    k = min(ctx.config.knn_neighbors, len(X) - 1)
    if k < 1:
        return CheckResult("knn_label_agreement", "unreferenced", False, skipped="needs at least two rows")
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    disagreement = 1.0 - (y[neighbours] == y[:, None]).mean(axis=1)
    return _fraction_result(ctx, "knn_label_agreement", disagreement >= KNN_DISAGREE, disagreement, started)


def isolation_forest_check(ctx: Context) -> CheckResult:
    """Global IsolationForest on the batch; rows beyond Tukey's far-out fence are flagged."""
    started = time.perf_counter()
    forest = IsolationForest(n_estimators=100, random_state=ctx.config.seed).fit(ctx.data.X)
    scores = -forest.score_samples(ctx.data.X)
    return _fraction_result(ctx, "isolation_forest", _far_out(scores), scores, started)


def isolation_forest_per_class_check(ctx: Context) -> CheckResult:
    """IsolationForest within each class: rows normal overall but odd for their label."""
    started = time.perf_counter()
    scores = np.zeros(len(ctx.data.y))
    mask = np.zeros(len(ctx.data.y), dtype=bool)
    for c in np.unique(ctx.data.y):
        rows = np.flatnonzero(ctx.data.y == c)
        if len(rows) < 10:
            continue
        forest = IsolationForest(n_estimators=50, random_state=ctx.config.seed).fit(ctx.data.X[rows])
        scores[rows] = -forest.score_samples(ctx.data.X[rows])
        mask[rows] = _far_out(scores[rows])
    return _fraction_result(ctx, "isolation_forest_per_class", mask, scores, started)


def spectral_signatures_check(ctx: Context) -> CheckResult:
    """Per class: squared projection on the top singular vector of the centred, standardised rows
    (Tran, Li & Madry 2018, on input features)."""
    started = time.perf_counter()
    X = _standardised(ctx.data.X)
    scores = np.zeros(len(X))
    mask = np.zeros(len(X), dtype=bool)
    for c in np.unique(ctx.data.y):
        rows = np.flatnonzero(ctx.data.y == c)
        if len(rows) < 10:
            continue
        centred = X[rows] - X[rows].mean(axis=0)
        top = np.linalg.svd(centred, full_matrices=False)[2][0]
        scores[rows] = (centred @ top) ** 2
        mask[rows] = _far_out(scores[rows])
    return _fraction_result(ctx, "spectral_signatures", mask, scores, started)


def trigger_mining_check(ctx: Context) -> CheckResult:
    """Tabular trigger mining (research notes §2.8): exact feature values shared by an unusual number of
    rows ("spikes") whose rows almost all carry one label, and whose neighbours on the *other*
    features mostly carry different labels. Neighbours come from the trusted reference when there
    is one, else from the incoming rows outside the suspect bins. Runs with and without a reference."""
    started = time.perf_counter()
    scaler = StandardScaler().fit(ctx.data.X if ctx.data.X_ref is None else ctx.data.X_ref)
    X = scaler.transform(ctx.data.X)
    y = ctx.data.y
    n = len(y)
    support = max(5, int(0.005 * n))
    prior = np.bincount(y, minlength=ctx.data.n_classes) / n
    candidates: dict[int, list[tuple[int, np.ndarray]]] = {}
    for j in range(X.shape[1]):
        values, inverse, counts = np.unique(ctx.data.X[:, j], return_inverse=True, return_counts=True)
        if ctx.data.X_ref is not None:  # a spike: far more frequent than in the reference
            ref_values, ref_counts = np.unique(ctx.data.X_ref[:, j], return_counts=True)
            pos = np.clip(np.searchsorted(ref_values, values), 0, len(ref_values) - 1)
            expected = np.where(ref_values[pos] == values, ref_counts[pos], 0) * n / len(ctx.data.X_ref)
            spikes = (counts >= support) & (counts >= 3 * (expected + 1))
        elif len(values) <= 20:  # low-cardinality feature: its values are not spikes
            continue
        else:
            spikes = (counts >= support) & (counts >= 10 * np.median(counts))
        for v in np.flatnonzero(spikes):
            rows = np.flatnonzero(inverse.ravel() == v)
            label_counts = np.bincount(y[rows], minlength=ctx.data.n_classes)
            c = int(label_counts.argmax())
            purity = label_counts[c] / len(rows)
            if purity >= 0.9 and purity / max(prior[c], 1e-12) >= 1.5:
                candidates.setdefault(c, []).append((j, rows[y[rows] == c]))
    scores = np.zeros(n)
    mask = np.zeros(n, dtype=bool)
    bins = []
    for c, found in candidates.items():
        features = sorted({j for j, _ in found})
        suspects = np.unique(np.concatenate([rows for _, rows in found]))
        others = np.setdiff1d(np.arange(X.shape[1]), features)
        if ctx.data.X_ref is not None and ctx.data.y_ref is not None:
            pop_X, pop_y = scaler.transform(ctx.data.X_ref), ctx.data.y_ref
        else:
            population = np.setdiff1d(np.arange(n), suspects)
            pop_X, pop_y = X[population], y[population]
        k = min(ctx.config.knn_neighbors, len(pop_y))
        if len(others) == 0 or k < 3:
            continue
        idx = NearestNeighbors(n_neighbors=k).fit(pop_X[:, others]).kneighbors(
            X[suspects][:, others], return_distance=False)
        disagreement = 1.0 - (pop_y[idx] == c).mean(axis=1)
        scores[suspects] = np.maximum(scores[suspects], disagreement)
        for j, rows in found:  # a bin is suspicious as a whole: label-pure and neighbour-inconsistent
            bin_disagreement = float(disagreement[np.searchsorted(suspects, rows)].mean())
            if bin_disagreement >= 0.5:
                mask[rows] = True
                bins.append({"label": str(ctx.data.classes[c]), "feature": ctx.data.encoded_names[j],
                             "value": float(ctx.data.X[rows[0], j]), "rows": int(len(rows)),
                             "mean_disagreement": bin_disagreement})
    flagged = int(mask.sum())
    role = "reference" if ctx.has_reference else "unreferenced"
    return CheckResult("trigger_mining", role, bool(bins) and flagged >= support, threshold=support,
                       statistics={"flagged_fraction": flagged / n, "suspect_bins": bins[:10]},
                       flagged_rows=tuple(np.flatnonzero(mask).tolist()), scores=scores,
                       seconds=time.perf_counter() - started)


def _standardised(X: np.ndarray) -> np.ndarray:
    return StandardScaler().fit_transform(X)


def _far_out(scores: np.ndarray) -> np.ndarray:
    q1, q3 = np.quantile(scores, [0.25, 0.75])
    return scores > q3 + TUKEY_FAR * max(q3 - q1, 1e-12)


def _fraction_result(ctx: Context, name: str, mask: np.ndarray, scores: np.ndarray, started: float) -> CheckResult:
    limit = ctx.max_flag_fraction(name)
    fraction = float(mask.mean())
    return CheckResult(name, "unreferenced", fraction > limit, threshold=limit,
                       statistics={"flagged_fraction": fraction},
                       flagged_rows=tuple(np.flatnonzero(mask).tolist()), scores=scores,
                       seconds=time.perf_counter() - started)
