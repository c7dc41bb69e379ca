"""Calibration against held-out trusted reference scores (research notes §4.2b, §5.5).

* ``pooled_fisher_test``: the batch test. The threshold is a quantile of the POOLED reference ∪
  incoming scores, then a one-sided Fisher exact test compares the exceedance counts. Because the
  threshold is a symmetric function of the pooled sample, the count is hypergeometric under
  exchangeability and the test is exact (a threshold from the reference alone was
  anti-conservative). Several levels are tried (high levels are far more powerful against 1%
  contamination); the smallest per-level p-value is the statistic, and its null distribution is
  simulated exactly (nested hypergeometric draws), so no Bonferroni penalty is paid for the levels.
* ``row_p_values``: per-row conformal p-values against the reference scores, with an exponential
  tail fitted to the top 10% of the reference so that rows beyond every reference row still get
  an ordered, calibrated value instead of a tie at ``1/(m+1)``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import hypergeom

TAIL_MIN_POINTS = 10
"""The exponential tail beyond the reference maximum is fitted on at least this many top scores."""


def pooled_fisher_test(ref_scores: np.ndarray, inc_scores: np.ndarray, quantiles: tuple[float, ...],
                       min_exceedances: float, rng: np.random.Generator,
                       draws: int = 10000) -> tuple[float, dict[str, float]]:
    """(p-value, statistics of the most significant level).

    At each level the one-sided Fisher p-value of the exceedance counts is computed; the statistic
    is the smallest of them, and its null distribution is simulated exactly: under exchangeability
    the incoming rows among the pooled top-k sets are nested hypergeometric draws. This keeps the
    test exact without a Bonferroni penalty for the (highly correlated) levels.
    """
    pooled = np.concatenate([ref_scores, inc_scores])
    N, n_inc = len(pooled), len(inc_scores)
    levels = sorted(q for q in quantiles if (1 - q) * N >= min_exceedances) or [min(quantiles)]
    thresholds = [float(np.quantile(pooled, q)) for q in levels]
    sizes = np.array([int((pooled > t).sum()) for t in thresholds])  # nested, decreasing
    observed = np.array([int((inc_scores > t).sum()) for t in thresholds])
    level_p = hypergeom.sf(observed - 1, N, sizes, n_inc)
    best = int(np.argmin(level_p))
    # simulate the incoming counts in the nested top sets, from the smallest set outwards
    counts = np.zeros((draws, len(levels)), dtype=np.int64)
    taken, inc_taken = 0, np.zeros(draws, dtype=np.int64)
    for i in range(len(levels) - 1, -1, -1):
        extra = sizes[i] - taken
        if extra > 0:
            inc_left = n_inc - inc_taken
            inc_taken = inc_taken + rng.hypergeometric(inc_left, (N - taken) - inc_left, extra)
            taken = sizes[i]
        counts[:, i] = inc_taken
    simulated = np.ones(draws)
    for i, size in enumerate(sizes):  # look-up table of the level's p-value for every possible count
        table = hypergeom.sf(np.arange(-1, size), N, size, n_inc)
        simulated = np.minimum(simulated, table[counts[:, i]])
    p = float((1 + np.sum(simulated <= level_p[best] * (1 + 1e-9))) / (draws + 1))
    stats = {"quantile": levels[best], "score_threshold": thresholds[best],
             "incoming_exceed": int(observed[best]), "reference_exceed": int(sizes[best] - observed[best]),
             "incoming_rate": float(observed[best] / n_inc),
             "reference_rate": float((sizes[best] - observed[best]) / len(ref_scores)),
             "level_p_value": float(level_p[best]), "levels_tested": len(levels)}
    return p, stats


def row_p_values(ref_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Calibrated p-value of each score against the reference scores (higher score = smaller p).

    Smoothed conformal p-value ``(1 + c(s)) / (m + 1)``: ``c`` counts the reference scores above
    ``s``, interpolated linearly between consecutive reference scores. Between two reference
    scores it lies between the plain conformal p-value and its strict-inequality version (the
    interval in which the exact randomised conformal p-value lies), and rows that fall between
    two reference scores keep their score order instead of tying (ties cost ranking precision on
    small references). Beyond the reference maximum an exponential tail fitted to the top 10% of the
    reference (at least ``TAIL_MIN_POINTS`` scores) continues it, so extreme rows stay ordered and calibrated.
    """
    ref = np.sort(np.asarray(ref_scores, dtype=float))
    scores = np.asarray(scores, dtype=float)
    m = len(ref)
    knots = np.unique(ref)
    greater = m - np.searchsorted(ref, knots, side="right")  # reference scores strictly above each knot
    count = np.where(scores < knots[0], m, np.interp(scores, knots, greater))
    p = (1.0 + count) / (m + 1.0)
    top = ref[-1]
    beyond = scores > top
    if beyond.any():
        # exponential tail on the top 10% of the reference, but on at least TAIL_MIN_POINTS scores:
        # a scale estimated from 4-5 points is noisy, and an underestimated scale makes far rows
        # look far more significant than they are (anti-conservative on small references)
        k = min(m - 1, max(TAIL_MIN_POINTS, int(np.ceil(0.1 * m))))
        u = ref[m - 1 - k] if k > 0 else ref[0]
        excess = ref[ref > u] - u
        scale = float(excess.mean()) if excess.size else 0.0
        if not scale > 0:
            scale = max(float(np.std(ref)), 1e-12)
        p[beyond] = np.exp(-(scores[beyond] - top) / scale) / (m + 1.0)
    return p
