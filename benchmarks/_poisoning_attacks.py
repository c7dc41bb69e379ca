"""Seeded poisoning attacks of research notes §5.2 (our own code). Each returns
``(X', y', is_poison, trigger)`` where ``trigger`` is ``(features, values, target)`` for backdoors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cleanlab.benchmarking.noise_generation import generate_noise_matrix_from_trace, generate_noisy_labels

Trigger = tuple[np.ndarray, np.ndarray, int] | None
Attack = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray, Trigger]]


def random_flip(rate: float) -> Attack:
    """Flip ``rate`` of the rows to a uniformly chosen other class."""
    def attack(X, y, rng):
        K = int(y.max()) + 1
        idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
        y2 = y.copy()
        y2[idx] = (y[idx] + rng.integers(1, K, len(idx))) % K
        return X.copy(), y2, _mask(len(y), idx), None
    return attack


def targeted_flip(rate: float) -> Attack:
    """Class-conditional: ``rate`` of the largest class relabelled as the next class."""
    def attack(X, y, rng):
        source = int(np.bincount(y).argmax())
        target = (source + 1) % (int(y.max()) + 1)
        rows = np.flatnonzero(y == source)
        idx = rng.choice(rows, int(round(rate * len(rows))), replace=False)
        y2 = y.copy()
        y2[idx] = target
        return X.copy(), y2, _mask(len(y), idx), None
    return attack


def cl_noise(rate: float, sparsity: float) -> Attack:
    """Confident-learning paper noise: a noise matrix with trace K(1 - rate) and the given sparsity."""
    def attack(X, y, rng):
        K = int(y.max()) + 1
        prior = np.bincount(y, minlength=K) / len(y)
        seed = int(rng.integers(1 << 30))
        matrix = generate_noise_matrix_from_trace(K, K * (1 - rate), py=prior, frac_zero_noise_rates=sparsity,
                                                  valid_noise_matrix=K > 2, seed=seed)
        np.random.seed(seed)  # generate_noisy_labels draws from numpy's global generator
        y2 = np.asarray(generate_noisy_labels(y, matrix)).astype(y.dtype)
        return X.copy(), y2, y2 != y, None
    return attack


def backdoor(rate: float, in_range: bool, target: int = 0, size: int = 3) -> Attack:
    """Dirty-label feature trigger: copies of non-target rows with ``size`` features set to the trigger
    value (out of range: max + 3 sd + 1 on the lowest-variance features; in range: the 95th
    percentile of random features), relabelled to ``target``."""
    def attack(X, y, rng):
        k = max(1, int(round(rate * len(y))))
        if in_range:
            features = rng.choice(X.shape[1], size, replace=False)
            values = np.percentile(X[:, features], 95, axis=0)
        else:
            features = np.argsort(X.std(axis=0))[:size]
            values = X[:, features].max(axis=0) + 3 * X[:, features].std(axis=0) + 1
        poisons = X[rng.choice(np.flatnonzero(y != target), k, replace=True)].copy()
        poisons[:, features] = values
        return (np.vstack([X, poisons]), np.r_[y, np.full(k, target)], np.r_[np.zeros(len(y), bool),
                np.ones(k, bool)], (features, values, target))
    return attack


def collision(rate: float, target_point: np.ndarray, target_label: int) -> Attack:
    """Clean-label feature collision: base-class rows moved 60-90% of the way to a target point."""
    def attack(X, y, rng):
        k = max(3, int(round(rate * len(y))))
        base = (target_label + 1) % (int(y.max()) + 1)
        B = X[rng.choice(np.flatnonzero(y == base), k, replace=True)]
        beta = rng.uniform(0.6, 0.9, (k, 1))
        P = B + beta * (target_point - B) + 0.01 * X.std(axis=0) * rng.standard_normal(B.shape)
        return np.vstack([X, P]), np.r_[y, np.full(k, base)], np.r_[np.zeros(len(y), bool), np.ones(k, bool)], None
    return attack


def duplicate_flip(rate: float, multiplicity: int = 5) -> Attack:
    """Weight amplification: ``multiplicity`` copies of a few rows each, labels shifted to (y + 1) mod K."""
    def attack(X, y, rng):
        k = int(round(rate * len(y)))
        seeds = rng.choice(len(y), max(1, k // multiplicity), replace=False)
        src = np.resize(seeds, k)
        K = int(y.max()) + 1
        return np.vstack([X, X[src]]), np.r_[y, (y[src] + 1) % K], np.r_[np.zeros(len(y), bool), np.ones(k, bool)], None
    return attack


def duplicate_exact(rate: float) -> Attack:
    """Benign control: exact copies with their own labels (duplicates, not label issues)."""
    def attack(X, y, rng):
        src = rng.choice(len(y), int(round(rate * len(y))), replace=False)
        return np.vstack([X, X[src]]), np.r_[y, y[src]], np.r_[np.zeros(len(y), bool), np.ones(len(src), bool)], None
    return attack


def ood(rate: float) -> Attack:
    """Uniform junk rows in [min - span/2, max + span/2] with random labels."""
    def attack(X, y, rng):
        k = max(1, int(round(rate * len(y))))
        lo, hi = X.min(axis=0), X.max(axis=0)
        span = hi - lo
        P = rng.uniform(lo - 0.5 * span, hi + 0.5 * span, (k, X.shape[1]))
        return (np.vstack([X, P]), np.r_[y, rng.integers(0, int(y.max()) + 1, k)],
                np.r_[np.zeros(len(y), bool), np.ones(k, bool)], None)
    return attack


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask
