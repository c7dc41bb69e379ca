"""Read a parquet/CSV file (or take a DataFrame) and pin its identity: the SHA-256 of the exact bytes parsed."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from pipeshield._progress import ProgressBar
from pipeshield.datasets import sha256_stream, table_digest
from pipeshield.errors import DataInputError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
TableSource = pd.DataFrame | str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class DatasetIdentity:
    """What a dataset was: its URI, the SHA-256 of its bytes (or of its canonical rows for an in-memory
    DataFrame, ``kind="table"``) and its row count."""

    uri: str
    sha256: str
    rows: int
    kind: str = "file"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LoadedTable:
    frame: pd.DataFrame
    identity: DatasetIdentity
    format: str


def local_path(source: str | os.PathLike[str]) -> Path:
    """A local path from a path or ``file://`` URI; other schemes are refused."""
    text = os.fspath(source)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise DataInputError(f"{text}: unsupported URI scheme {parsed.scheme!r} (use a local path or file://)")
    return Path(text)


def table_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataInputError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use .parquet or .csv")
    return fmt


def read_table(source: TableSource, name: str = "dataset") -> LoadedTable:
    """Load ``source``; the bytes are hashed as they are read, so the identity covers exactly what was parsed."""
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index(drop=True)
        _require_rows(frame, f"{name} (DataFrame)")
        return LoadedTable(frame, DatasetIdentity("dataframe:" + name, table_digest(frame), len(frame), "table"), "frame")
    path = local_path(source)
    fmt = table_format(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle, ProgressBar(size, f"reading {path.name}") as progress:
            buffer = io.BytesIO()
            sha256 = sha256_stream(_Tee(handle, buffer), progress if size > 64 << 20 else None)
    except FileNotFoundError:
        raise DataInputError(f"{name} {path}: file not found") from None
    except OSError as exc:
        raise DataInputError(f"{name} {path}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise DataInputError(f"{name} {path}: file is empty")
    buffer.seek(0)
    try:
        frame = pd.read_parquet(buffer) if fmt == "parquet" else pd.read_csv(buffer)
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        raise DataInputError(f"{name} {path}: not a readable {fmt} file ({type(exc).__name__}: {_short(exc)})") from None
    _require_rows(frame, f"{name} {path}")
    return LoadedTable(frame.reset_index(drop=True), DatasetIdentity(path.resolve().as_uri(), sha256, len(frame)), fmt)


def write_table(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write atomically (temporary file, then rename) so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _require_rows(frame: pd.DataFrame, what: str) -> None:
    if frame.shape[1] == 0:
        raise DataInputError(f"{what}: has no columns")
    if len(frame) == 0:
        raise DataInputError(f"{what}: has no rows")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]


class _Tee:
    """A readable stream that copies what it reads into ``sink``."""

    def __init__(self, source: io.BufferedReader, sink: io.BytesIO) -> None:
        self.source, self.sink = source, sink

    def readinto(self, buffer: bytearray) -> int:
        count = self.source.readinto(buffer)
        if count:
            self.sink.write(memoryview(buffer)[:count])
        return count
