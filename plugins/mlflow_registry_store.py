"""``mlflow.model_registry_store`` plugin: a registry that accepts only signed, verified model versions.

Start the server with it (schemes ``signed+sqlite`` and ``signed+postgresql``)::

    PIPESHIELD_TRUSTED_KEYS_DIR=/etc/pipeshield/keys \\
    mlflow server --backend-store-uri sqlite:///m.db --registry-store-uri signed+sqlite:///m.db

It refuses with ``PERMISSION_DENIED``: a version without a valid signature over its artifacts
(downloaded from the artifact store and re-hashed here) or whose signature binds another name, version,
logged model or run; setting or deleting any ``pipeshield.*`` version tag; pointing a protected alias
(``PIPESHIELD_PROTECTED_ALIASES``, default ``champion``) or the ``Production`` stage at a version that
does not verify now. The checks themselves live in :mod:`pipeshield.registry`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.artifact.utils.models import _parse_model_uri
from mlflow.store.model_registry.dbmodels.models import SqlModelVersion
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient
from sqlalchemy import func

from pipeshield.config import Settings
from pipeshield.errors import PipeshieldError
from pipeshield.registry import (
    VersionConflictError,
    check_version,
    is_protected_tag,
    model_id_of,
    next_version_marker,
    trusted_keys,
    wait_version_marker,
)

log = logging.getLogger(__name__)

SCHEMES = ("signed+sqlite", "signed+postgresql")
PROTECTED_STAGES = frozenset({"production"})
"""Comma-separated aliases that may point only at verified versions (default ``champion``)."""
_PROXY_ROUTE = "/api/2.0/mlflow-artifacts/artifacts/"
TICKET_SECONDS = 30.0
"""How long version numbers handed to refused registrations stay reserved after the latest one."""


def build_store(store_uri: str, tracking_uri: str | None = None) -> SignedRegistryStore:
    """Entry point: ``signed+<db>://...`` → a :class:`SignedRegistryStore` over ``<db>://...``."""
    scheme, _, rest = store_uri.partition("+")
    if scheme != "signed" or not rest:
        raise MlflowException(f"not a signed registry store URI: {store_uri.split('://')[0]}://...")
    return SignedRegistryStore(rest, tracking_uri=tracking_uri, settings=Settings.load())


def _denied(message: str) -> MlflowException:
    log.warning("pipeshield registry: denied: %s", message)
    return MlflowException(message, error_code=PERMISSION_DENIED)


class SignedRegistryStore(SqlAlchemyStore):
    """``SqlAlchemyStore`` that enforces signatures (see the module docstring)."""

    def __init__(self, db_uri: str, *, tracking_uri: str | None = None, settings: Settings) -> None:
        super().__init__(db_uri)
        self._tracking_uri = tracking_uri
        self._settings = settings
        self._protected_aliases = frozenset(settings.protected_aliases)
        self._version_locks: dict[str, threading.Lock] = {}
        self._version_locks_guard = threading.Lock()
        self._tickets: dict[str, tuple[int, float]] = {}  # name -> (highest number handed out, valid until)

    # --- versions ---------------------------------------------------------
    def create_model_version(self, name, source, run_id=None, tags=None, run_link=None, description=None,
                             local_model_path=None, model_id=None):
        tag_map = {t.key: t.value for t in tags or []}
        location, run_id = self._storage_location(source, run_id, model_id)
        expected_version = self._next_version(name)
        try:
            self._check(location, name=name, version=expected_version, model_id=model_id or model_id_of(source),
                        run_id=run_id or None, tags=tag_map)
        except VersionConflictError as conflict:
            raise self._conflict(name, conflict.signed_version, expected_version) from None
        with self._version_lock(name):  # verified in parallel; numbered one at a time, so no gaps
            assigned = self._next_version(name)
            if assigned == expected_version:
                created = super().create_model_version(name, source, run_id=run_id, tags=tags, run_link=run_link,
                                                       description=description, local_model_path=local_model_path,
                                                       model_id=model_id)
        if assigned != expected_version:
            raise self._conflict(name, expected_version, assigned)
        if int(created.version) != expected_version:  # another server process took the number
            super().delete_model_version(name, created.version)
            raise _denied(f"{name!r}: version {expected_version} was taken while verifying; retry "
                          f"{next_version_marker(int(created.version) + 1)}")
        log.info("pipeshield registry: registered verified %r v%s", name, created.version)
        return created

    def set_model_version_tag(self, name, version, tag):
        if is_protected_tag(tag.key):
            raise _denied(f"tag {tag.key!r} of {name!r} v{version} is immutable (pipeshield.* tags are set once, "
                          "at registration)")
        return super().set_model_version_tag(name, version, tag)

    def delete_model_version_tag(self, name, version, key):
        if is_protected_tag(key):
            raise _denied(f"tag {key!r} of {name!r} v{version} is immutable and cannot be deleted")
        return super().delete_model_version_tag(name, version, key)

    # --- promotion --------------------------------------------------------
    def set_registered_model_alias(self, name, alias, version):
        if alias in self._protected_aliases:
            self._reverify(name, version, f"alias {alias!r}")
        return super().set_registered_model_alias(name, alias, version)

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions):
        if str(stage).lower() in PROTECTED_STAGES:
            self._reverify(name, version, f"stage {stage!r}")
        return super().transition_model_version_stage(name, version, stage, archive_existing_versions)

    # --- helpers ----------------------------------------------------------
    def _version_lock(self, name: str) -> threading.Lock:
        with self._version_locks_guard:
            return self._version_locks.setdefault(name, threading.Lock())

    def _conflict(self, name: str, signed: int, assigned: int) -> MlflowException:
        """The refusal for a signature bound to another number than ``assigned``.

        Refused registrations get distinct numbers (tickets: ``assigned``, then one more each), so that
        concurrent signers re-sign once each instead of racing for the same number again. A signer that
        comes back with its ticket before the numbers ahead of it are used is told to wait. Tickets lapse
        ``TICKET_SECONDS`` after the latest one was handed out. They are hints only: a version is
        created only with the number assigned at that moment.
        """
        with self._version_lock(name):
            now = time.monotonic()
            promised, until = self._tickets.get(name, (0, 0.0))
            live = now < until and promised >= assigned
            if live and assigned < signed <= promised:
                return _denied(f"{name!r}: version {signed} is reserved for this registration, but versions "
                               f"{assigned}..{signed - 1} are not registered yet; send it again later "
                               f"{wait_version_marker(signed)}")
            ticket = promised + 1 if live else assigned
            self._tickets[name] = (ticket, now + TICKET_SECONDS)
        return _denied(f"{name!r}: the signature binds version {signed} but the registry assigns version "
                       f"{assigned}; re-sign for version {ticket} {next_version_marker(ticket)}")

    def _reverify(self, name: str, version: Any, what: str) -> None:
        mv = self.get_model_version(name, version)
        location = self.get_model_version_download_uri(name, version)
        try:
            self._check(location, name=mv.name, version=int(mv.version), model_id=model_id_of(mv.source),
                        run_id=mv.run_id or None, tags=mv.tags)
        except VersionConflictError as exc:
            raise _denied(f"{what} may point only at a verified version: {exc}") from None
        except MlflowException as exc:
            raise _denied(f"{what} may point only at a verified version: {exc.message}") from None

    def _check(self, location: str, **expected: Any) -> None:
        try:
            keys = trusted_keys(self._settings)
            with tempfile.TemporaryDirectory(prefix="pipeshield-registry-") as tmp:
                if expected["tags"]:
                    model_dir = _download(location, Path(tmp))
                else:
                    model_dir = Path(tmp)  # check_version refuses before reading any file
                check_version(model_dir, keys, **expected)
        except VersionConflictError:
            raise
        except PipeshieldError as exc:
            raise _denied(str(exc)) from None
        except MlflowException as exc:
            raise _denied(f"cannot read the artifacts at {location!r} to verify them: {exc.message}") from None

    def _next_version(self, name: str) -> int:
        with self.ManagedSessionMaker() as session:
            highest = (session.query(func.max(SqlModelVersion.version))
                       .filter(SqlModelVersion.name == name, *self._get_workspace_clauses(SqlModelVersion))
                       .scalar())
        return (highest or 0) + 1

    def _storage_location(self, source: str, run_id: str | None, model_id: str | None) -> tuple[str, str | None]:
        """Where the version's files are (as ``SqlAlchemyStore.create_model_version`` resolves it) and its run."""
        if urllib.parse.urlparse(source).scheme != "models":
            return source, run_id
        parsed = _parse_model_uri(source)
        try:
            if parsed.model_id is not None:
                logged = MlflowClient(tracking_uri=self._tracking_uri).get_logged_model(parsed.model_id)
                return logged.artifact_location, run_id or logged.source_run_id
            return self.get_model_version_download_uri(parsed.name, parsed.version), run_id
        except MlflowException as exc:
            raise _denied(f"cannot resolve source {source!r}: {exc.message}") from None


def _download(location: str, dest: Path) -> Path:
    """Copy the files at ``location`` into ``dest`` straight from the artifact store (not over HTTP)."""
    parsed = urllib.parse.urlparse(location)
    relative = None
    if parsed.scheme == "mlflow-artifacts":
        relative = parsed.path
    elif parsed.scheme in ("http", "https") and _PROXY_ROUTE in parsed.path:
        relative = parsed.path.split(_PROXY_ROUTE, 1)[1]
    if relative is None:
        return Path(get_artifact_repository(location).download_artifacts("", dst_path=str(dest)))
    relative = relative.strip("/")
    if not relative or any(part in ("", ".", "..") for part in relative.split("/")):
        raise MlflowException(f"refusing artifact path {relative!r}")
    from mlflow.server.constants import ARTIFACTS_DESTINATION_ENV_VAR  # not at import: it loads the server

    destination = os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR)
    if not destination:
        raise MlflowException("the server does not serve artifacts (start it with --artifacts-destination)")
    return Path(get_artifact_repository(destination).download_artifacts(relative, dst_path=str(dest)))
