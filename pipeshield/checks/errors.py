"""Errors raised by the data checks. Each names the column, file or setting at fault."""

from __future__ import annotations

from pipeshield.errors import PipeshieldError


class DataCheckError(PipeshieldError):
    """The data or the check configuration cannot be checked as given."""


class MissingLabelColumnError(DataCheckError):
    """The label column is absent from a frame."""

    def __init__(self, column: str, where: str) -> None:
        self.column = column
        super().__init__(f"label column {column!r} not found in the {where} data")


class SchemaMismatchError(DataCheckError):
    """Reference and incoming data do not have the same columns or compatible dtypes."""


class EmptyDataError(DataCheckError):
    """A frame has no rows (or no feature columns)."""


class MissingValuesError(DataCheckError):
    """Missing or infinite values where the checks cannot handle them."""

    def __init__(self, where: str, counts: dict[str, int]) -> None:
        self.counts = dict(counts)
        listed = ", ".join(f"{name!r} ({count})" for name, count in counts.items())
        super().__init__(f"missing or infinite values in the {where} data, column(s): {listed}")


class UnsupportedFeatureError(DataCheckError):
    """A feature column has a dtype (or cardinality) the checks cannot encode."""


class CheckConfigError(DataCheckError):
    """A ``PoisoningConfig`` value is invalid; the message names the setting."""
