"""Gross-drift checks against the reference: per-feature KS / chi-squared and a classifier
two-sample test. They had no power against <= 20% poisoning in the pilot (research notes §4.2a):
they guard against source or schema changes, not against poisoning."""

from __future__ import annotations

import time

import numpy as np
from scipy.stats import binomtest, chi2_contingency, ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier

from pipeshield.checks.errors import CheckConfigError
from pipeshield.checks.poisoning._context import Context
from pipeshield.checks.poisoning._report import CheckResult


def feature_drift_check(ctx: Context) -> CheckResult:
    """KS per numeric feature, chi-squared per categorical feature and on the labels; Bonferroni."""
    started = time.perf_counter()
    d = ctx.data
    if not (d.X_ref is not None and d.y_ref is not None and ctx.reference is not None):
        raise CheckConfigError("this check needs a trusted reference batch")
    p_values: dict[str, float] = {}
    for j, column in enumerate(d.numeric_columns):
        p_values[column] = float(ks_2samp(d.X[:, j], d.X_ref[:, j]).pvalue)
    for column in d.categorical_columns:
        p_values[column] = _chi2(ctx.incoming[column].astype(str).to_numpy(),
                                 ctx.reference[column].astype(str).to_numpy())
    p_values[f"label:{ctx.label_column}"] = _chi2(d.y, d.y_ref)
    worst = min(p_values, key=p_values.__getitem__)
    p = min(1.0, p_values[worst] * len(p_values))
    alpha = ctx.alpha("feature_drift")
    top = dict(sorted(p_values.items(), key=lambda kv: kv[1])[:5])
    return CheckResult("feature_drift", "drift", p <= alpha, p_value=p, threshold=alpha,
                       statistics={"tests": len(p_values), "most_shifted": worst, "lowest_p_values": top},
                       seconds=time.perf_counter() - started)


def classifier_drift_check(ctx: Context) -> CheckResult:
    """Classifier two-sample test on (features, one-hot label): can a model tell incoming from reference?"""
    started = time.perf_counter()
    d = ctx.data
    if not (d.X_ref is not None and d.y_ref is not None):
        raise CheckConfigError("this check needs a trusted reference batch")
    rng = ctx.rng(7)
    m = min(len(d.X), len(d.X_ref), ctx.config.drift_max_rows)
    inc = rng.choice(len(d.X), m, replace=False)
    ref = rng.choice(len(d.X_ref), m, replace=False)
    onehot = np.eye(d.n_classes)
    Z = np.vstack([np.hstack([d.X[inc], onehot[d.y[inc]]]), np.hstack([d.X_ref[ref], onehot[d.y_ref[ref]]])])
    t = np.r_[np.ones(m, int), np.zeros(m, int)]
    half = rng.permutation(2 * m) % 2 == 0
    correct = 0
    for train in (half, ~half):
        model = HistGradientBoostingClassifier(max_iter=50, random_state=ctx.config.seed)
        model.fit(Z[train], t[train])
        correct += int((model.predict(Z[~train]) == t[~train]).sum())
    p = float(binomtest(correct, 2 * m, 0.5, alternative="greater").pvalue)
    alpha = ctx.alpha("classifier_drift")
    return CheckResult("classifier_drift", "drift", p <= alpha, p_value=p, threshold=alpha,
                       statistics={"rows_per_side": m, "held_out_accuracy": correct / (2 * m)},
                       seconds=time.perf_counter() - started)


def _chi2(a: np.ndarray, b: np.ndarray) -> float:
    values = np.unique(np.concatenate([a, b]))
    if len(values) < 2:
        return 1.0
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    return float(chi2_contingency(table)[1])
