"""``PoisoningConfig``: per-check enablement and thresholds, calibration settings, seed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from pipeshield.checks.errors import CheckConfigError

CHECK_NAMES = (
    # cheapest first; the order the portfolio runs and reports them in
    "schema",
    "provenance",
    "duplicates",
    "feature_drift",
    "reference_novelty",
    "reference_label",
    "knn_label_agreement",
    "isolation_forest",
    "isolation_forest_per_class",
    "spectral_signatures",
    "trigger_mining",
    "oof_label_issues",
    "classifier_drift",
)


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """Overrides for one check; ``None`` means "use the portfolio-wide value"."""

    enabled: bool = True
    alpha: float | None = None
    """Batch-test level for this check (default: ``PoisoningConfig.alpha`` / number of statistical checks)."""
    row_alpha: float | None = None
    """Calibrated per-row p-value at or below which a row is flagged."""
    max_flag_fraction: float | None = None
    """Checks without a reference: fire when more than this fraction of rows is flagged."""


@dataclasses.dataclass(frozen=True)
class PoisoningConfig:
    """Settings of the poisoning portfolio. The defaults are the ones the benchmark measures."""

    seed: int = 0
    alpha: float = 0.01
    """Family-wise false-alarm level of the reference count tests (Bonferroni over those checks)."""
    drift_alpha: float = 0.01
    """Family-wise level of the gross-drift tests (Bonferroni over those checks)."""
    row_alpha: float = 0.005
    """A row is flagged by a reference-calibrated check when its calibrated p-value is at most this."""
    quantiles: tuple[float, ...] = (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
    """Pooled-threshold levels of the Fisher count test (its min-p over levels is tested exactly)."""
    min_exceedances: float = 3.0
    """A level is used only if the pooled sample is expected to have this many rows above it."""
    min_batch_rows: int = 100
    """Below this many incoming rows the count tests are skipped (row flags are still reported)."""
    calibration_folds: int | None = None
    """Cross-fitting folds over the reference (out-of-fold reference scores are the calibration
    sample); ``None`` = 5 below ``boosting_min_rows`` * 2.5 reference rows, else 2."""
    label_model: Literal["auto", "logistic", "logistic_knn", "gradient_boosting"] = "auto"
    """Trusted-reference label model; ``auto`` = ``logistic_knn`` (soft vote of logistic regression and
    a 7-nearest-neighbour classifier) below ``boosting_min_rows`` reference rows, else gradient boosting."""
    boosting_min_rows: int = 2000
    key_columns: tuple[str, ...] = ()
    """Columns that identify a row (for "changed row" provenance); never used as features."""
    exclude_columns: tuple[str, ...] = ()
    """Other columns never used as features (ids, timestamps, free text)."""
    expect_reference_rows: bool = False
    """Incoming is a new full snapshot: every reference row must still be present, unchanged."""
    max_categories: int = 50
    """Text/categorical features are one-hot encoded up to this many distinct values."""
    max_conflicting_duplicates: int = 0
    """Duplicate groups with conflicting labels allowed before the duplicate check fails the batch."""
    max_duplicate_fraction: float = 0.01
    """Excess of redundant exact copies (over the reference's own rate) allowed before it fails."""
    unreferenced_checks: Literal["auto", "always", "never"] = "auto"
    """Run the checks that need no reference: ``auto`` = only when no reference is given."""
    unreferenced_flag_fraction: float = 0.03
    """Default ``max_flag_fraction`` of the checks that need no reference."""
    knn_neighbors: int = 10
    drift_max_rows: int = 20000
    """Rows per side used by the classifier two-sample test (random subsample above this)."""
    max_threads: int | None = 1
    """Threads of the native pools (BLAS, OpenMP) while the checks run. 1 avoids oversubscription on
    shared workers (several gate tasks per node); ``None`` keeps the libraries' defaults."""
    checks: Mapping[str, CheckSettings] = dataclasses.field(default_factory=dict)
    """Per-check overrides by name (see ``CHECK_NAMES``)."""

    def __post_init__(self) -> None:
        unknown = set(self.checks) - set(CHECK_NAMES)
        if unknown:
            raise CheckConfigError(f"checks: unknown check name(s) {sorted(unknown)}; known: {list(CHECK_NAMES)}")
        for name, settings in self.checks.items():
            if not isinstance(settings, CheckSettings):
                raise CheckConfigError(f"checks[{name!r}]: expected CheckSettings, got {type(settings).__name__}")
            for field in ("alpha", "row_alpha", "max_flag_fraction"):
                value = getattr(settings, field)
                if value is not None and not 0 < value < 1:
                    raise CheckConfigError(f"checks[{name!r}].{field}: expected a number in (0, 1), got {value!r}")
        for field in ("alpha", "drift_alpha", "row_alpha", "max_duplicate_fraction", "unreferenced_flag_fraction"):
            value = getattr(self, field)
            if not 0 < value < 1:
                raise CheckConfigError(f"{field}: expected a number in (0, 1), got {value!r}")
        if not self.quantiles or any(not 0 < q < 1 for q in self.quantiles):
            raise CheckConfigError(f"quantiles: expected levels in (0, 1), got {self.quantiles!r}")
        if self.calibration_folds is not None and self.calibration_folds < 2:
            raise CheckConfigError(f"calibration_folds: expected at least 2, got {self.calibration_folds!r}")
        if self.label_model not in ("auto", "logistic", "logistic_knn", "gradient_boosting"):
            raise CheckConfigError("label_model: expected auto, logistic, logistic_knn or gradient_boosting, "
                                   f"got {self.label_model!r}")
        if self.unreferenced_checks not in ("auto", "always", "never"):
            raise CheckConfigError(f"unreferenced_checks: expected auto, always or never, got {self.unreferenced_checks!r}")
        if self.max_threads is not None and self.max_threads < 1:
            raise CheckConfigError(f"max_threads: expected at least 1 or None, got {self.max_threads!r}")
        for field in ("min_batch_rows", "max_conflicting_duplicates", "knn_neighbors", "max_categories"):
            if getattr(self, field) < 0:
                raise CheckConfigError(f"{field}: expected a whole number >= 0")

    def settings(self, name: str) -> CheckSettings:
        """The overrides for check ``name`` (all defaults when none are given)."""
        return self.checks.get(name, CheckSettings())

    def enabled(self, name: str) -> bool:
        return self.settings(name).enabled

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["checks"] = {name: dataclasses.asdict(s) for name, s in self.checks.items()}
        out["quantiles"] = list(self.quantiles)
        out["key_columns"] = list(self.key_columns)
        out["exclude_columns"] = list(self.exclude_columns)
        return out
