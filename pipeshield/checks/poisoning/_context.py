"""What every check receives: the encoded data, the raw frames and the configuration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipeshield.checks.poisoning._config import PoisoningConfig
from pipeshield.checks.poisoning._prepare import Prepared


@dataclasses.dataclass
class Context:
    data: Prepared
    incoming: pd.DataFrame
    reference: pd.DataFrame | None
    label_column: str
    config: PoisoningConfig
    n_count_tests: int
    """Number of reference count tests in this run (Bonferroni denominator of ``alpha``)."""
    n_drift_tests: int
    """Number of drift tests in this run (Bonferroni denominator of ``drift_alpha``)."""

    @property
    def has_reference(self) -> bool:
        return self.data.X_ref is not None

    def alpha(self, name: str) -> float:
        override = self.config.settings(name).alpha
        if override is not None:
            return override
        if name.endswith("_drift"):
            return self.config.drift_alpha / max(1, self.n_drift_tests)
        return self.config.alpha / max(1, self.n_count_tests)

    def row_alpha(self, name: str) -> float:
        override = self.config.settings(name).row_alpha
        return override if override is not None else self.config.row_alpha

    def max_flag_fraction(self, name: str) -> float:
        override = self.config.settings(name).max_flag_fraction
        return override if override is not None else self.config.unreferenced_flag_fraction

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, salt])
