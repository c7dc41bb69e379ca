"""Where a model to register comes from: its run and experiment, and a local download of its files."""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path

from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.utils.models import _parse_model_uri
from mlflow.tracking import MlflowClient

from pipeshield.registry._errors import RegistryError
from pipeshield.registry._reach import mlflow_error


@dataclasses.dataclass(frozen=True)
class Origin:
    run_id: str | None
    experiment_id: str


def resolve(client: MlflowClient, model_uri: str, experiment_id: str | None) -> Origin:
    """Run and experiment behind ``model_uri`` (``experiment_id`` wins when given)."""
    scheme = urllib.parse.urlparse(model_uri).scheme
    try:
        if scheme == "runs":
            run_id = model_uri[len("runs:/"):].split("/", 1)[0]
            return Origin(run_id, experiment_id or client.get_run(run_id).info.experiment_id)
        if scheme == "models":
            parsed = _parse_model_uri(model_uri)
            if parsed.model_id is not None:
                logged = client.get_logged_model(parsed.model_id)
                return Origin(logged.source_run_id, experiment_id or logged.experiment_id)
            if parsed.alias:
                mv = client.get_model_version_by_alias(parsed.name, parsed.alias)
            elif parsed.version:
                mv = client.get_model_version(parsed.name, str(parsed.version))
            else:
                raise RegistryError(f"{model_uri!r}: name a version (models:/<name>/<version>) or an alias (@alias)")
            run_id = mv.run_id or None
            if experiment_id is None and run_id:
                experiment_id = client.get_run(run_id).info.experiment_id
            return Origin(run_id, experiment_id or "0")
    except MlflowException as exc:
        raise mlflow_error(client.tracking_uri, f"cannot resolve {model_uri!r}", exc) from None
    return Origin(None, experiment_id or "0")


def artifact_location(client: MlflowClient, uri: str) -> str:
    """The artifact-store URI behind ``models:/`` and ``runs:/`` URIs, resolved through ``client``.

    (``download_artifacts`` resolves those through the *global* tracking URI, whatever ``tracking_uri``
    it is given, so they are resolved here first.)
    """
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "models":
        parsed = _parse_model_uri(uri)
        if parsed.model_id is not None:
            return client.get_logged_model(parsed.model_id).artifact_location
        if parsed.alias:
            version = client.get_model_version_by_alias(parsed.name, parsed.alias).version
        elif parsed.version:
            version = parsed.version
        else:
            raise RegistryError(f"{uri!r}: name a version (models:/<name>/<version>) or an alias (@alias)")
        return client.get_model_version_download_uri(parsed.name, version)
    if scheme == "runs":
        run_id, _, path = uri[len("runs:/"):].partition("/")
        root = client.get_run(run_id).info.artifact_uri.rstrip("/")
        return f"{root}/{path}" if path else root
    return uri


def download(client: MlflowClient, uri: str, dest: Path) -> Path:
    """Download the model directory at ``uri`` into ``dest``; refuse a single file."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        location = artifact_location(client, uri)
        local = Path(download_artifacts(artifact_uri=location, dst_path=str(dest), tracking_uri=client.tracking_uri))
    except MlflowException as exc:
        raise mlflow_error(client.tracking_uri, f"cannot download {uri!r}", exc) from None
    if not local.is_dir():
        raise RegistryError(f"{uri!r} is a single file; a model is a directory of files")
    return local
