"""Dataset identity: a full SHA-256 over the exact bytes, and a canonical-rows hash for tables.

MLflow's own dataset digest is MD5 cut to 8 characters over the first 10,000 rows; these are the
identities pipeshield logs, signs and re-checks instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd

CHUNK = 1 << 20

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just processed."""


def sha256_stream(stream: IO[bytes], progress: ProgressCallback | None = None) -> str:
    """Hex SHA-256 of everything left in ``stream``."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        count = stream.readinto(buffer)  # type: ignore[attr-defined]
        if not count:
            break
        digest.update(view[:count])
        if progress:
            progress(count)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> str:
    """Hex SHA-256 of a file's exact bytes."""
    with open(path, "rb", buffering=0) as handle:
        return sha256_stream(handle, progress)


def canonical_row_hashes(frame: pd.DataFrame) -> pd.Series:
    """One hex SHA-256 per row over its values in column-name order, independent of file format.

    Values are rendered with ``repr`` of their Python value, so ``1`` and ``1.0`` differ while the same
    table read from CSV or parquet (with the same dtypes) hashes the same. Missing values hash as ``<NA>``.
    """
    columns = sorted(frame.columns, key=str)
    ordered = frame[columns]
    header = "\x1f".join(f"{name}" for name in columns)

    def row_hash(values: tuple) -> str:
        cells = "\x1f".join("<NA>" if _is_missing(v) else repr(_plain(v)) for v in values)
        return hashlib.sha256(f"{header}\x1e{cells}".encode()).hexdigest()

    return pd.Series([row_hash(tuple(row)) for row in ordered.itertuples(index=False, name=None)],
                     index=frame.index, dtype="string")


def table_digest(frame: pd.DataFrame) -> str:
    """Hex SHA-256 over the sorted canonical row hashes: equal for the same rows in any order."""
    digest = hashlib.sha256()
    for row in sorted(canonical_row_hashes(frame)):
        digest.update(bytes.fromhex(row))
    return digest.hexdigest()


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: object) -> object:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
