"""Input validation and feature encoding shared by every check.

Numeric and boolean columns become floats. Text / categorical columns (``object``, ``string``,
``category``) are one-hot encoded over the categories seen in the reference (or in the incoming
data when there is no reference), up to ``max_categories`` distinct values; values never seen in
the reference encode as all-zero and are reported by the schema check. Datetime, timedelta and
other dtypes are refused. Missing or infinite values are refused (impute before the gate).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from pipeshield.checks.errors import (
    DataCheckError,
    EmptyDataError,
    MissingLabelColumnError,
    MissingValuesError,
    SchemaMismatchError,
    UnsupportedFeatureError,
)
from pipeshield.checks.poisoning._config import PoisoningConfig


@dataclasses.dataclass
class Prepared:
    """Encoded incoming (and reference) data."""

    X: np.ndarray
    y: np.ndarray
    X_ref: np.ndarray | None
    y_ref: np.ndarray | None
    classes: list[Any]
    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    encoded_names: list[str]
    schema_notes: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def prepare(incoming: Any, reference: Any, label_column: str, config: PoisoningConfig) -> Prepared:
    """Validate the frames and encode them; raises a ``DataCheckError`` naming the problem."""
    _check_frame(incoming, "incoming")
    if reference is not None:
        _check_frame(reference, "reference")
    for frame, where in ((incoming, "incoming"), (reference, "reference")):
        if frame is None:
            continue
        if label_column not in frame.columns:
            raise MissingLabelColumnError(label_column, where)
        missing = [c for c in (*config.key_columns, *config.exclude_columns) if c not in frame.columns]
        if missing:
            raise SchemaMismatchError(f"key/excluded column(s) {missing} not found in the {where} data")
    if reference is not None:
        extra = [c for c in incoming.columns if c not in reference.columns]
        absent = [c for c in reference.columns if c not in incoming.columns]
        if extra or absent:
            parts = []
            if absent:
                parts.append(f"missing from incoming: {absent}")
            if extra:
                parts.append(f"not in reference: {extra}")
            raise SchemaMismatchError("reference/incoming schema mismatch - " + "; ".join(parts))
    skip = {label_column, *config.key_columns, *config.exclude_columns}
    features = [c for c in incoming.columns if c not in skip]
    if not features:
        raise EmptyDataError("no feature columns left after removing the label, key and excluded columns")
    notes: dict[str, Any] = {"dtype_changes": {}, "unseen_categories": {}, "new_labels": []}
    numeric, categorical = [], []
    for column in features:
        kind = _kind(incoming[column], column, "incoming")
        if reference is not None:
            ref_kind = _kind(reference[column], column, "reference")
            if ref_kind != kind:
                raise SchemaMismatchError(
                    f"column {column!r} is {kind} ({incoming[column].dtype}) in incoming but "
                    f"{ref_kind} ({reference[column].dtype}) in reference")
            if incoming[column].dtype != reference[column].dtype:
                notes["dtype_changes"][column] = [str(reference[column].dtype), str(incoming[column].dtype)]
        (numeric if kind == "numeric" else categorical).append(column)
    _check_missing(incoming, [*features, label_column], "incoming", numeric)
    if reference is not None:
        _check_missing(reference, [*features, label_column], "reference", numeric)

    basis = reference if reference is not None else incoming
    categories: dict[str, list[str]] = {}
    for column in categorical:
        values = sorted(basis[column].astype(str).unique())
        if len(values) > config.max_categories:
            raise UnsupportedFeatureError(
                f"column {column!r} has {len(values)} distinct values (more than max_categories="
                f"{config.max_categories}); exclude it or encode it before the gate")
        categories[column] = values
        unseen = sorted(set(incoming[column].astype(str).unique()) - set(values))
        if unseen:
            notes["unseen_categories"][column] = unseen[:20]

    classes = _classes(incoming[label_column], None if reference is None else reference[label_column])
    if reference is not None:
        known = set(_label_keys(reference[label_column]))
        notes["new_labels"] = sorted({k for k in _label_keys(incoming[label_column]) if k not in known})[:20]
    names = list(numeric) + [f"{c}={v}" for c in categorical for v in categories[c]]
    X = _encode(incoming, numeric, categorical, categories)
    X_ref = None if reference is None else _encode(reference, numeric, categorical, categories)
    index = {key: i for i, key in enumerate(classes)}
    y = np.array([index[k] for k in _label_keys(incoming[label_column])], dtype=np.int64)
    y_ref = None if reference is None else np.array(
        [index[k] for k in _label_keys(reference[label_column])], dtype=np.int64)
    return Prepared(X, y, X_ref, y_ref, classes, features, numeric, categorical, names, notes)


def _check_frame(frame: Any, where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataCheckError(f"the {where} data must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise EmptyDataError(f"the {where} data has no rows")
    if frame.columns.duplicated().any():
        dup = sorted(set(map(str, frame.columns[frame.columns.duplicated()])))
        raise SchemaMismatchError(f"the {where} data has duplicate column names: {dup}")


def _kind(series: pd.Series, column: str, where: str) -> str:
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype) or (ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype)):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype) or ptypes.is_string_dtype(dtype) or ptypes.is_object_dtype(dtype):
        return "categorical"
    raise UnsupportedFeatureError(
        f"column {column!r} in the {where} data has dtype {dtype}, which the poisoning checks cannot "
        "encode (numeric, boolean and text/categorical columns are supported); exclude it via "
        "PoisoningConfig.exclude_columns or convert it")


def _check_missing(frame: pd.DataFrame, columns: list[str], where: str, numeric: list[str]) -> None:
    counts: dict[str, int] = {}
    for column in columns:
        series = frame[column]
        bad = int(series.isna().sum())
        if column in numeric and not ptypes.is_bool_dtype(series.dtype):
            values = series.to_numpy(dtype=float, na_value=np.nan)
            bad = int((~np.isfinite(values)).sum())
        if bad:
            counts[str(column)] = bad
    if counts:
        raise MissingValuesError(where, counts)


def _encode(frame: pd.DataFrame, numeric: list[str], categorical: list[str],
            categories: dict[str, list[str]]) -> np.ndarray:
    blocks = [frame[numeric].to_numpy(dtype=float)] if numeric else []
    for column in categorical:
        values = frame[column].astype(str).to_numpy()
        blocks.append((values[:, None] == np.asarray(categories[column])[None, :]).astype(float))
    return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))


def _label_keys(series: pd.Series) -> list[Any]:
    """Hashable, order-comparable label keys (numbers stay numbers, everything else as text)."""
    if ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype):
        return [float(v) if float(v) != int(v) else int(v) for v in series.to_numpy()]
    return [str(v) for v in series.to_numpy()]


def _classes(incoming: pd.Series, reference: pd.Series | None) -> list[Any]:
    keys = set(_label_keys(incoming))
    if reference is not None:
        ref_keys = _label_keys(reference)
        if {type(k) is str for k in ref_keys} != {type(k) is str for k in keys}:
            raise SchemaMismatchError("label column holds numbers in one frame and text in the other")
        keys |= set(ref_keys)
    return sorted(keys)
