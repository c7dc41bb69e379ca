"""Dataset identity for lineage: hash a training file and log it to MLflow as a dataset input.

MLflow's own digest (MD5, 8 hex characters, first 10,000 rows) stays for the UI; the identities that
pipeshield checks are the input tags ``pipeshield.dataset.sha256`` (exact bytes) and
``pipeshield.dataset.table_digest`` (canonical rows), plus the URI and row count.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from pipeshield._progress import ProgressBar
from pipeshield.datasets import sha256_file, table_digest
from pipeshield.lineage import attributes as A
from pipeshield.lineage.errors import LineageError


@dataclasses.dataclass(frozen=True)
class DatasetIdentity:
    """What identifies one dataset: where it is and what its bytes and rows hash to."""

    uri: str
    sha256: str
    table_digest: str | None
    rows: int | None
    name: str

    def span_attributes(self) -> dict[str, str | int]:
        attrs: dict[str, str | int] = {A.DATASET_URI: self.uri, A.DATASET_SHA256: self.sha256, A.DATASET_NAME: self.name}
        if self.table_digest:
            attrs[A.DATASET_TABLE_DIGEST] = self.table_digest
        if self.rows is not None:
            attrs[A.DATASET_ROWS] = self.rows
        return attrs

    def input_tags(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.span_attributes().items() if k != A.DATASET_NAME}


def read_table(path: Path) -> pd.DataFrame | None:
    """The file as a table when it is CSV or parquet, else None."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return None


def local_path_of(uri: str) -> Path | None:
    """The local file a ``file://`` URI or plain path names, or None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


def identify(path: str | os.PathLike[str], *, uri: str | None = None, name: str | None = None) -> DatasetIdentity:
    """Hash a local dataset file (full SHA-256, canonical-rows digest for CSV/parquet, row count)."""
    file = Path(path)
    if not file.is_file():
        raise LineageError(f"dataset {str(file)!r} is not a readable file")
    with ProgressBar(file.stat().st_size, f"sha256 {file.name}") as bar:
        digest = sha256_file(file, bar)
    frame = read_table(file)
    return DatasetIdentity(
        uri=uri or file.resolve().as_uri(),
        sha256=digest,
        table_digest=table_digest(frame) if frame is not None else None,
        rows=len(frame) if frame is not None else None,
        name=name or file.stem,
    )


def log_dataset(
    path: str | os.PathLike[str], *, uri: str | None = None, name: str | None = None, context: str = "training",
    targets: str | None = None,
) -> DatasetIdentity:
    """Hash ``path`` and log it as an input of the active MLflow run (``mlflow.log_input`` with tags).

    A ``pipeshield.dataset.log`` span (child of the current one) records the identity and the run id.
    """
    import mlflow

    from pipeshield.lineage import lineage_span

    identity = identify(path, uri=uri, name=name)
    run = mlflow.active_run()
    if run is None:
        raise LineageError("log_dataset needs an active MLflow run (mlflow.start_run())")
    attributes: dict[str, str | int] = {**identity.span_attributes(), A.MLFLOW_RUN_ID: run.info.run_id}
    with lineage_span("dataset.log", attributes):
        frame = read_table(Path(path))
        if frame is not None:
            dataset = mlflow.data.from_pandas(frame, source=identity.uri, name=identity.name, targets=targets)
        else:
            from mlflow.data.dataset_source_registry import resolve_dataset_source
            from mlflow.data.meta_dataset import MetaDataset

            dataset = MetaDataset(resolve_dataset_source(identity.uri), name=identity.name,
                                  digest=identity.sha256[:32])
        mlflow.log_input(dataset, context=context, tags=identity.input_tags())
    return identity


def record_gate_report(report_sha256: str, verdict: str, report_uri: str) -> None:
    """Tag the active MLflow run with the data-gate report that cleared its training data."""
    import mlflow

    if mlflow.active_run() is None:
        raise LineageError("record_gate_report needs an active MLflow run (mlflow.start_run())")
    mlflow.set_tags({A.GATE_REPORT_SHA256: report_sha256, A.GATE_VERDICT: verdict, A.GATE_REPORT_URI: report_uri})
