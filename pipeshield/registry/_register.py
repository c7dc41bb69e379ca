"""``register_signed_model``: download → scan → hash → sign → upload a signed copy → register with signature tags.

Each registration gets its own *signed copy*: a new MLflow logged model (``models:/m-...``) holding the
model files plus the signature, the bindings and the ML-BOM. The signature binds the registered name,
the version number the registry is expected to assign, the signed copy's model id, the run, the source
URI, and the dataset and gate-report digests. When the registry assigns another number (a concurrent
registration, a deleted version the client cannot see), the signed store refuses with the number to
bind (distinct for concurrent refusals); the bindings are re-signed for it and only the three pipeshield
files are uploaded again. A number the store reserved but cannot assign yet is sent again once the
version before it exists.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from mlflow.entities import LoggedModelStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeshield.config import Settings
from pipeshield.keys import KeyProvider, open_key_provider
from pipeshield.registry import _origin
from pipeshield.registry._enforce import parse_next_version, parse_wait_version
from pipeshield.registry._errors import RegistrationRefusedError, RegistryError
from pipeshield.registry._reach import mlflow_error, unreachable
from pipeshield.registry._tags import signature_tags
from pipeshield.scan import ScanPolicy
from pipeshield.signing import RESERVED_FILES, ArtifactDigest, ModelBindings, ProgressCallback, sign_model

log = logging.getLogger(__name__)

SIGNED_COPY_TAG = "pipeshield.signed_copy_of"
WAIT_SECONDS = 60.0
"""How long a registration holding a reserved version number waits for the numbers ahead of it."""


def register_signed_model(model_uri: str, name: str, *,
                          datasets: Iterable[ArtifactDigest | Mapping[str, str]] = (),
                          gate_reports: Iterable[ArtifactDigest | Mapping[str, str]] = (),
                          provider: KeyProvider | None = None, key_name: str | None = None,
                          client: MlflowClient | None = None, experiment_id: str | None = None,
                          description: str | None = None, scan_policy: ScanPolicy | None = None,
                          workers: int | None = None, progress: ProgressCallback | None = None,
                          settings: Settings | None = None, max_attempts: int = 10) -> ModelVersion:
    """Sign the model at ``model_uri`` for ``name`` and register it; returns the new model version.

    ``model_uri``: ``models:/m-...``, ``runs:/<run>/<path>``, ``models:/<name>/<version>`` or a local
    directory (then ``experiment_id`` says where the signed copy goes; default ``"0"``). ``provider`` and
    ``key_name`` default to the configured key provider and ``PIPESHIELD_SIGNING_KEY``. Raises
    ``UnsafeModelError`` (scan finding: nothing signed or registered), ``RegistrationRefusedError``
    (the registry refused) or ``RegistryError``.
    """
    settings = settings or Settings.load()
    client = client or MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    key = key_name or settings.signing_key
    origin = _origin.resolve(client, model_uri, experiment_id)
    opened = provider is None
    provider = provider or open_key_provider(settings)
    try:
        with tempfile.TemporaryDirectory(prefix="pipeshield-register-") as tmp:
            model_dir = _origin.download(client, model_uri, Path(tmp) / "model")
            _ensure_registered_model(client, name)
            copy = client.create_logged_model(origin.experiment_id, name=_copy_name(name),
                                              source_run_id=origin.run_id, tags={SIGNED_COPY_TAG: model_uri})
            try:
                version = _register(client, copy.model_id, model_dir, name, origin.run_id, model_uri,
                                    datasets, gate_reports, provider, key, description, scan_policy, workers,
                                    progress, max_attempts)
            except BaseException:
                _mark_failed(client, copy.model_id)
                raise
            return version
    except MlflowException as exc:
        raise mlflow_error(client.tracking_uri, f"MLflow failed while registering {name!r}", exc) from None
    finally:
        if opened:
            provider.close()


def _register(client: MlflowClient, model_id: str, model_dir: Path, name: str, run_id: str | None,
              model_uri: str, datasets: Iterable, gate_reports: Iterable, provider: KeyProvider, key: str,
              description: str | None, scan_policy: ScanPolicy | None, workers: int | None,
              progress: ProgressCallback | None, max_attempts: int) -> ModelVersion:
    version = _guess_next_version(client, name)
    datasets, gate_reports = tuple(datasets), tuple(gate_reports)
    for attempt in range(1, max_attempts + 1):
        bindings = ModelBindings(name=name, version=version, model_id=model_id, run_id=run_id, source=model_uri,
                                 datasets=datasets, gate_reports=gate_reports)
        signed = sign_model(model_dir, provider, key, bindings, workers=workers,
                            progress=progress if attempt == 1 else None, scan_policy=scan_policy)
        if attempt == 1:
            client.log_model_artifacts(model_id, str(model_dir))
            client.finalize_logged_model(model_id, LoggedModelStatus.READY)
        else:
            _upload_pipeshield_files(client, model_id, model_dir)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                return client.create_model_version(name, f"models:/{model_id}", run_id=run_id,
                                                   tags=signature_tags(signed), description=description,
                                                   model_id=model_id)
            except MlflowException as exc:
                if unreachable(client.tracking_uri) is not None:
                    raise  # not a refusal: register_signed_model reports the outage
                message = exc.message
            if parse_wait_version(message) != version or time.monotonic() > deadline:
                break
            _wait_for_turn(client, name, version, min(deadline, time.monotonic() + 5))  # reserved: send again
        hinted = parse_next_version(message)
        if hinted is None or hinted == version or attempt == max_attempts:
            raise RegistrationRefusedError(f"registry refused {name!r}: {message}")
        log.info("registry assigns version %d of %r, not %d: re-signing", hinted, name, version)
        version = hinted
    raise AssertionError("unreachable")


def _wait_for_turn(client: MlflowClient, name: str, version: int, deadline: float) -> None:
    """Poll (jittered) until the registry shows version ``version - 1`` or ``deadline`` passes (deleted
    versions are invisible, so the deadline may end the wait; the registry then answers for itself)."""
    while time.monotonic() < deadline and not _exists(client, name, version - 1):
        time.sleep(0.2 + secrets.randbelow(300) / 1000)


def _exists(client: MlflowClient, name: str, version: int) -> bool:
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        return False
    return True


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise mlflow_error(client.tracking_uri, f"cannot create registered model {name!r}", exc) from None


def _guess_next_version(client: MlflowClient, name: str) -> int:
    """Highest visible version + 1 (deleted versions are invisible; the store corrects the guess)."""
    escaped = name.replace("'", "\\'")
    versions = client.search_model_versions(f"name = '{escaped}'")
    return max((int(v.version) for v in versions), default=0) + 1


def _upload_pipeshield_files(client: MlflowClient, model_id: str, model_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pipeshield-resign-") as tmp:
        for name in RESERVED_FILES:
            (Path(tmp) / name).write_bytes((model_dir / name).read_bytes())
        client.log_model_artifacts(model_id, tmp)


def _mark_failed(client: MlflowClient, model_id: str) -> None:
    if (why := unreachable(client.tracking_uri)) is not None:  # no second round of client retries
        log.warning("could not mark signed copy %s as FAILED: MLflow is unreachable (%s)", model_id, why)
        return
    try:
        client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
    except MlflowException as exc:  # keep the original error; the copy just stays PENDING
        log.warning("could not mark signed copy %s as FAILED: %s", model_id, exc.message)


def _copy_name(name: str) -> str:
    return f"{name}-signed"
