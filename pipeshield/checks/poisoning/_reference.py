"""Trusted-reference checks: a label model fitted on the reference only, and a novelty model.

Poisoned rows never reach the label model's training data, so it cannot learn a trigger
(research notes §4.2c). The reference is cross-fitted: each of K folds trains a model on the other
folds and scores its own fold (the held-out calibration scores). For the batch test each incoming
row is scored by one of the K models drawn at random, so that its score has the same distribution
as a held-out reference score under the null (averaging the K models would shrink incoming scores
towards their mean and make the count test anti-conservative at middle quantiles). For ranking
and flagging rows the K models' scores are averaged (cross-conformal style): one random model per
row adds model-to-model noise to the row order, which costs precision when each fold model has
only a few dozen training rows; averaging shrinks the tail, so the row p-values stay on the
conservative side there. The batch verdict is the pooled-threshold Fisher count test of incoming
vs held-out reference scores; rows are flagged by their calibrated p-value.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeshield.checks.errors import CheckConfigError
from pipeshield.checks.poisoning._calibration import pooled_fisher_test, row_p_values
from pipeshield.checks.poisoning._context import Context
from pipeshield.checks.poisoning._report import CheckResult


KNN_NEIGHBOURS = 7
"""Neighbours of the kNN half of the ``logistic_knn`` label model."""


def label_model_kind(ctx: Context) -> str:
    """The configured label model, with ``auto`` resolved by the reference size."""
    if not (ctx.data.X_ref is not None):
        raise CheckConfigError("this check needs a trusted reference batch")
    if ctx.config.label_model != "auto":
        return ctx.config.label_model
    return "gradient_boosting" if len(ctx.data.X_ref) >= ctx.config.boosting_min_rows else "logistic_knn"


def label_model(ctx: Context, n_train: int | None = None) -> ClassifierMixin:
    """The classifier the label check fits on reference folds (``n_train`` rows per fold).

    Below ``boosting_min_rows`` reference rows the default is a soft vote of logistic regression and
    a k-nearest-neighbour classifier on standardised features: with a few dozen reference rows a
    linear model alone extrapolates with confidence into regions it never saw (an in-range trigger
    or a point between two classes gets a confident, wrong-way probability), while the neighbours
    keep the probability local to the trusted rows.
    """
    kind = label_model_kind(ctx)
    if kind == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=ctx.config.seed)
    if kind == "logistic_knn":
        k = max(1, min(KNN_NEIGHBOURS, n_train if n_train is not None else len(ctx.data.X_ref)))
        return make_pipeline(StandardScaler(), VotingClassifier(
            [("logistic", LogisticRegression(max_iter=2000)), ("knn", KNeighborsClassifier(k))], voting="soft"))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def reference_label_check(ctx: Context) -> CheckResult:
    """Score ``1 - p(given label | x)`` under models trained on the trusted reference only."""
    started = time.perf_counter()
    K = ctx.data.n_classes

    def fit_score(train: np.ndarray, X_eval: list[np.ndarray], y_eval: list[np.ndarray]) -> list[np.ndarray]:
        if not (ctx.data.X_ref is not None and ctx.data.y_ref is not None):
            raise CheckConfigError("this check needs a trusted reference batch")
        y_train = ctx.data.y_ref[train]
        if len(np.unique(y_train)) < 2:  # a one-class fold predicts its class with certainty
            return [(yy != y_train[0]).astype(float) for yy in y_eval]
        model = label_model(ctx, len(train)).fit(ctx.data.X_ref[train], y_train)
        out = []
        for XX, yy in zip(X_eval, y_eval):
            if not len(XX):
                out.append(np.zeros(0))
                continue
            proba = np.zeros((len(XX), K))
            proba[:, model.classes_] = model.predict_proba(XX)
            out.append(1.0 - proba[np.arange(len(yy)), yy])
        return out

    ref_scores, scores, averaged = _cross_fit(ctx, fit_score)
    return _calibrated_result(ctx, "reference_label", ref_scores, scores, started,
                              {"label_model": label_model_kind(ctx)}, row_scores=averaged, tail_scale=_log_loss)


def reference_novelty_check(ctx: Context) -> CheckResult:
    """IsolationForest fitted without labels on reference ∪ incoming; calibrated on the reference rows.

    Fitting on the pooled rows treats reference and incoming rows identically, so under "incoming is
    like the reference" their scores stay exchangeable and the count test stays exact; with the
    incoming rows in the fit, junk rows widen the split ranges and isolate in a few splits (a forest
    fitted on the reference alone scores far-out rows no higher than its own most extreme rows).
    """
    started = time.perf_counter()
    if not (ctx.data.X_ref is not None):
        raise CheckConfigError("this check needs a trusted reference batch")
    pooled = np.vstack([ctx.data.X_ref, ctx.data.X])
    forest = IsolationForest(n_estimators=200, random_state=ctx.config.seed).fit(pooled)
    scores = -forest.score_samples(pooled)
    n_ref = len(ctx.data.X_ref)
    return _calibrated_result(ctx, "reference_novelty", scores[:n_ref], scores[n_ref:], started, {})


FitScore = Callable[[np.ndarray, list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


def _cross_fit(ctx: Context, fit_score: FitScore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out-of-fold reference scores, incoming scores each from one randomly assigned fold model,
    incoming scores averaged over all fold models)."""
    X_ref, y_ref = ctx.data.X_ref, ctx.data.y_ref
    if not (X_ref is not None and y_ref is not None):
        raise CheckConfigError("this check needs a trusted reference batch")
    folds = ctx.config.calibration_folds or (5 if len(X_ref) < 2.5 * ctx.config.boosting_min_rows else 2)
    folds = min(folds, len(X_ref))
    counts = np.bincount(y_ref)
    if counts[counts > 0].min() >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=ctx.config.seed).split(X_ref, y_ref)
    else:
        splitter = KFold(folds, shuffle=True, random_state=ctx.config.seed).split(X_ref)
    ref_scores = np.zeros(len(X_ref))
    scores = np.zeros(len(ctx.data.X))
    averaged = np.zeros(len(ctx.data.X))
    assigned = ctx.rng(3).integers(0, folds, len(ctx.data.X))
    for fold, (train, held_out) in enumerate(splitter):
        held, inc = fit_score(train, [X_ref[held_out], ctx.data.X], [y_ref[held_out], ctx.data.y])
        ref_scores[held_out] = held
        scores[assigned == fold] = inc[assigned == fold]
        averaged += inc / folds
    return ref_scores, scores, averaged


def _log_loss(scores: np.ndarray) -> np.ndarray:
    """``1 - p(given label)`` as the log-loss ``-log p(given label)``: the same order, but unbounded."""
    return -np.log(np.clip(1.0 - scores, 1e-15, 1.0))


def _calibrated_result(ctx: Context, name: str, ref_scores: np.ndarray, scores: np.ndarray,
                       started: float, extra: dict, row_scores: np.ndarray | None = None,
                       tail_scale: Callable[[np.ndarray], np.ndarray] | None = None) -> CheckResult:
    """``scores`` feed the batch test (exchangeable with ``ref_scores`` under the null);
    ``row_scores`` (default: the same) rank and flag the rows. ``tail_scale`` is an increasing
    transform applied before the row p-values: conformal p-values ignore it, but the tail beyond
    the reference maximum is fitted on the transformed scale (for the label check, the log-loss:
    ``1 - p`` is bounded by 1, so a row the reference model calls impossible could not get beyond
    a reference row it merely finds doubtful)."""
    row_alpha = ctx.row_alpha(name)
    row_scores = scores if row_scores is None else row_scores
    scale = tail_scale or (lambda values: values)
    p_rows = row_p_values(scale(ref_scores), scale(row_scores))
    flagged = tuple(np.flatnonzero(p_rows <= row_alpha).tolist())
    alpha = ctx.alpha(name)
    stats = {"reference_rows": len(ref_scores), "row_alpha": row_alpha,
             "reference_score_q99": float(np.quantile(ref_scores, 0.99)), **extra}
    p, test_stats = pooled_fisher_test(ref_scores, scores, ctx.config.quantiles, ctx.config.min_exceedances,
                                       ctx.rng(11))
    stats.update(test_stats)
    skipped = None
    if len(scores) < ctx.config.min_batch_rows:
        skipped = (f"batch of {len(scores)} rows is under min_batch_rows={ctx.config.min_batch_rows}: "
                   "the count test is reported but cannot fail the batch; rows are still flagged")
    fired = p <= alpha and skipped is None
    if fired:  # quarantine the rows above the level at which the excess was detected
        above = np.flatnonzero(scores > test_stats["score_threshold"])
        flagged = tuple(sorted(set(flagged) | set(above.tolist())))
    return CheckResult(name, "reference", fired, p_value=p, threshold=alpha, statistics=stats,
                       flagged_rows=flagged, scores=row_scores, row_p_values=p_rows, skipped=skipped,
                       seconds=time.perf_counter() - started)
