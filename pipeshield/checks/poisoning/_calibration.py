"""Calibration against held-out trusted reference scores (research notes §4.2b, §5.5).

* ``pooled_fisher_test``: the batch test. The threshold is a quantile of the POOLED reference ∪
  incoming scores, then a one-sided Fisher exact test compares the exceedance counts. Because the
  threshold is a symmetric function of the pooled sample, the count is hypergeometric under
  exchangeability and the test is exact (a threshold from the reference alone was
  anti-conservative). Several levels are tried (high levels are far more powerful against 1%
  contamination); the smallest p-value is Bonferroni-corrected over the levels used.
* ``row_p_values``: per-row conformal p-values against the reference scores, with an exponential
  tail fitted to the top 10% of the reference so that rows beyond every reference row still get
  an ordered, calibrated value instead of a tie at ``1/(m+1)``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import hypergeom


def pooled_fisher_test(ref_scores: np.ndarray, inc_scores: np.ndarray, quantiles: tuple[float, ...],
                       min_exceedances: float) -> tuple[float, dict[str, float]]:
    """(Bonferroni-corrected p-value, statistics of the most significant level)."""
    pooled = np.concatenate([ref_scores, inc_scores])
    levels = [q for q in quantiles if (1 - q) * len(pooled) >= min_exceedances] or [min(quantiles)]
    best_p, best = 1.0, {}
    for q in levels:
        threshold = float(np.quantile(pooled, q))
        a = int((inc_scores > threshold).sum())
        b = int((ref_scores > threshold).sum())
        # one-sided Fisher exact test == upper tail of the hypergeometric distribution
        p = float(hypergeom.sf(a - 1, len(pooled), a + b, len(inc_scores)))
        if p < best_p or not best:
            best_p = p
            best = {"quantile": q, "score_threshold": threshold, "incoming_exceed": a,
                    "reference_exceed": b, "incoming_rate": a / len(inc_scores),
                    "reference_rate": b / len(ref_scores)}
    best["levels_tested"] = len(levels)
    return min(1.0, best_p * len(levels)), best


def row_p_values(ref_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Calibrated p-value of each score against the reference scores (higher score = smaller p)."""
    ref = np.sort(np.asarray(ref_scores, dtype=float))
    m = len(ref)
    at_least = m - np.searchsorted(ref, scores, side="left")
    p = (1.0 + at_least) / (m + 1.0)
    top = ref[-1]
    beyond = scores > top
    if beyond.any():
        u = np.quantile(ref, 0.9)
        excess = ref[ref > u] - u
        scale = float(excess.mean()) if excess.size else 0.0
        if not scale > 0:
            scale = max(float(np.std(ref)), 1e-12)
        p[beyond] = np.exp(-(scores[beyond] - top) / scale) / (m + 1.0)
    return p
