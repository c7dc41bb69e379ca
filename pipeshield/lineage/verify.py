"""The model-verification interface lineage relies on (serving at load, ``pipeshield trace``).

A :class:`ModelVerifier` downloads a registered model version, re-hashes it and checks its signature
and bindings, returning a :class:`VerifiedModel` (or raising
:class:`~pipeshield.lineage.errors.ModelVerificationError`). :func:`default_verifier` returns the one
``pipeshield.registry`` provides (:mod:`pipeshield.lineage._signed`); without one nothing can be
verified, so serving refuses to start and the signature hop of a trace is "unverifiable".
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pipeshield.datasets import sha256_file
from pipeshield.lineage.errors import VerifierUnavailableError


@dataclasses.dataclass(frozen=True)
class DatasetBinding:
    """A dataset the signature covers."""

    uri: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class GateReportBinding:
    """A data-gate report the signature covers."""

    sha256: str
    verdict: str | None = None
    uri: str | None = None


@dataclasses.dataclass(frozen=True)
class VerifiedModel:
    """A model version whose files were re-hashed and whose signature and bindings checked out."""

    name: str
    version: str
    local_path: Path
    manifest_digest: str
    signature_digest: str | None
    model_id: str | None
    run_id: str | None
    datasets: tuple[DatasetBinding, ...] = ()
    gate_reports: tuple[GateReportBinding, ...] = ()
    verified: bool = True


class ModelVerifier(Protocol):
    """Verify ``models:/<name>/<version>`` against an MLflow tracking/registry URI."""

    def __call__(self, name: str, version: str, *, tracking_uri: str | None, dest: Path) -> VerifiedModel: ...


def _signed_registry() -> ModelVerifier | None:
    from pipeshield.lineage._signed import signed_registry_verifier

    return signed_registry_verifier()


VERIFIER_FACTORIES: list[Callable[[], ModelVerifier | None]] = [_signed_registry]
"""Verifier factories, first one returning a verifier wins (the signed registry's deploy gate first)."""


def default_verifier() -> ModelVerifier | None:
    """The installed signing layer's verifier, or None when no signing layer is installed."""
    for factory in VERIFIER_FACTORIES:
        verifier = factory()
        if verifier is not None:
            return verifier
    return None


def require_verifier(verifier: ModelVerifier | None = None) -> ModelVerifier:
    verifier = verifier or default_verifier()
    if verifier is None:
        raise VerifierUnavailableError(
            "no model verifier is installed (pipeshield.signing is missing); refusing to load an unverified model"
        )
    return verifier


def tree_digest(root: Path) -> str:
    """SHA-256 over the sorted (relative path, file SHA-256) pairs of a directory."""
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


class UnsafeUnverifiedDownload:
    """Downloads a model version WITHOUT checking any signature: for benchmarks and explicit opt-in only.

    Its :class:`VerifiedModel` has ``verified=False`` and a plain directory digest.
    """

    def __call__(self, name: str, version: str, *, tracking_uri: str | None, dest: Path) -> VerifiedModel:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        model_version = client.get_model_version(name, version)
        location = client.get_model_version_download_uri(name, version)
        repository = get_artifact_repository(location, tracking_uri=tracking_uri, registry_uri=tracking_uri)
        dest.mkdir(parents=True, exist_ok=True)
        local = Path(repository.download_artifacts("", dst_path=str(dest)))  # never mlflow.set_tracking_uri
        source = model_version.source or ""
        model_id = model_version.model_id or (source.split("/", 1)[1] if source.startswith("models:/") else None)
        return VerifiedModel(
            name=name, version=str(version), local_path=local, manifest_digest=tree_digest(local),
            signature_digest=None, model_id=model_id, run_id=model_version.run_id, verified=False,
        )
