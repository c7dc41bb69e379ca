"""MLflow artifact repository ``encrypted+<scheme>://…``: envelope-encrypts artifacts on upload and
decrypts them on download, transparently to ``mlflow.<flavor>.log_model`` / ``load_model``.

``encrypted+file:///srv/mlruns`` stores through MLflow's local repository, ``encrypted+s3://bucket/p``
through its S3 repository (any scheme MLflow knows works the same way). Encryption happens in the
process that logs or loads (the training or serving worker), with pipeshield's key provider
(``PIPESHIELD_*`` settings; key ``PIPESHIELD_WRAPPING_KEY``): use it as an experiment's
``artifact_location`` or the server's ``--default-artifact-root`` with ``--no-serve-artifacts``, so
the tracking server never sees plaintext.

Each file is one envelope bound to ``{"root": "<run or model id>/artifacts", "path": <artifact path>}``:
a ciphertext moved to another path, run or model does not decrypt. Listed sizes are ciphertext sizes.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

from mlflow.entities import FileInfo
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from pipeshield.config import Settings
from pipeshield.envelope import decrypt_file, encrypt_file
from pipeshield.keys import open_key_provider

PREFIX = "encrypted+"


class EncryptedArtifactRepository(ArtifactRepository):
    """Wraps the repository of the URI without the ``encrypted+`` prefix."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        # imported here: this module is loaded while MLflow's registry module is still initializing
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if not artifact_uri.startswith(PREFIX):
            raise ValueError(f"not an encrypted artifact URI: {artifact_uri!r}")
        self._inner = get_artifact_repository(artifact_uri[len(PREFIX):])
        parts = [p for p in artifact_uri.rstrip("/").split("/") if p]
        self._root = "/".join(parts[-2:])

    def _binding(self, path: str) -> dict[str, str]:
        return {"mlflow": "artifact", "root": self._root, "path": posixpath.normpath(path).lstrip("/")}

    def _seal(self, local_file: str, sealed: Path, artifact_path: str) -> None:
        settings = Settings.load()
        with open_key_provider(settings) as provider:
            encrypt_file(local_file, sealed, provider, key_name=settings.wrapping_key,
                         context=self._binding(artifact_path))

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        name = os.path.basename(local_file)
        with tempfile.TemporaryDirectory(prefix="pipeshield-mlflow-") as tmp:
            sealed = Path(tmp, name)
            self._seal(local_file, sealed, posixpath.join(artifact_path or "", name))
            self._inner.log_artifact(str(sealed), artifact_path)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="pipeshield-mlflow-") as tmp:
            for root, _, files in os.walk(local_dir):
                relative = os.path.relpath(root, local_dir)
                for name in files:
                    rel = name if relative == "." else posixpath.join(*Path(relative).parts, name)
                    sealed = Path(tmp, rel)
                    sealed.parent.mkdir(parents=True, exist_ok=True)
                    self._seal(os.path.join(root, name), sealed, posixpath.join(artifact_path or "", rel))
            self._inner.log_artifacts(tmp, artifact_path)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        return self._inner.list_artifacts(path)

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        local = Path(local_path)
        local.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="pipeshield-mlflow-", dir=local.parent) as tmp:
            sealed = Path(tmp, "sealed")
            self._inner._download_file(remote_file_path, str(sealed))
            with open_key_provider() as provider:
                decrypt_file(sealed, local, provider, context=self._binding(remote_file_path))

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        self._inner.delete_artifacts(artifact_path)
