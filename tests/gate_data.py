"""Small seeded tables for the data-gate tests: a trusted reference, a clean batch and a poisoned one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

SUITE = {
    "name": "features",
    "expectations": [
        {"type": "expect_column_to_exist", "kwargs": {"column": "label"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "f0", "min_value": -10, "max_value": 10}},
    ],
}


@dataclasses.dataclass
class GateData:
    reference: Path
    clean: Path
    poisoned: Path
    suite: Path
    poisoned_rows: list[int]
    """Positions in the poisoned batch that were flipped or injected."""


def make_tables(directory: Path, seed: int = 7, n: int = 400) -> GateData:
    """Reference and incoming from one distribution; the poisoned batch flips 10% of the labels and
    appends copies of 15 rows with the opposite label."""
    directory.mkdir(parents=True, exist_ok=True)
    X, y = make_classification(n_samples=2 * n, n_features=5, n_informative=4, n_redundant=0,
                               class_sep=2.0, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["label"] = y
    reference, incoming = frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    flipped = sorted(rng.choice(n, n // 10, replace=False).tolist())
    poisoned = incoming.copy()
    poisoned.loc[flipped, "label"] = 1 - poisoned.loc[flipped, "label"]
    copies = incoming.drop(index=flipped).iloc[:15].copy()
    copies["label"] = 1 - copies["label"]
    poisoned = pd.concat([poisoned, copies], ignore_index=True)
    paths = GateData(directory / "reference.parquet", directory / "clean.parquet", directory / "poisoned.parquet",
                     directory / "suite.json", flipped + list(range(n, n + 15)))
    reference.to_parquet(paths.reference, index=False)
    incoming.to_parquet(paths.clean, index=False)
    poisoned.to_parquet(paths.poisoned, index=False)
    paths.suite.write_text(json.dumps(SUITE))
    return paths
