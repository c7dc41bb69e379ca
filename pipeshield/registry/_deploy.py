"""The deploy gate: download a registered version, verify it, and hand over only the verified copy.

``verify_registered_model`` re-hashes every file and checks the signature, the bindings the registry
implies (name, version, logged model, run), the caller's expectations (datasets, gate reports) and the
immutable signature tags the registry recorded. Extra, missing or changed files fail. The verified copy
is moved into place only after every check passed, and its files are made read-only; deploy code must
load the model from :attr:`VerifiedModel.path` and nowhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeshield.config import Settings
from pipeshield.errors import BindingMismatchError
from pipeshield.registry import _origin
from pipeshield.registry._enforce import model_id_of
from pipeshield.registry._errors import RegistryError
from pipeshield.registry._reach import mlflow_error
from pipeshield.registry._tags import has_signature_tags, tag_mismatch
from pipeshield.signing import ModelBindings, ProgressCallback, TrustedKeys, verify_or_raise
from pipeshield.signing.resolve import ResolvedModel

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[1-9][0-9]*)|@(?P<alias>[\w-]+))/?$")


@dataclasses.dataclass(frozen=True)
class VerifiedModel:
    """A registered version that passed the deploy gate, and where its verified copy lives."""

    path: Path
    name: str
    version: int
    root_digest: str
    content_digest: str
    key_name: str
    key_version: int
    run_id: str | None
    model_id: str | None
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``VerifyModelOperator`` returns as its XCom)."""
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        out["files"] = list(self.files)
        return out


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
    match = _MODELS_URI.match(uri)
    if not match:
        raise RegistryError(f"{uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>")
    return match.group("name"), match.group("version"), match.group("alias")


def get_version(client: MlflowClient, name: str, version: str | int | None = None,
                alias: str | None = None) -> ModelVersion:
    if (version is None) == (alias is None):
        raise RegistryError("give exactly one of a version or an alias")
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if str(version).lower() == "latest":
            version = _latest_version(client, name)
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise mlflow_error(client.tracking_uri, f"model {name!r} {'@' + alias if alias else 'v' + str(version)}",
                           exc) from None


def _latest_version(client: MlflowClient, name: str) -> int:
    escaped = name.replace("'", "\\'")
    versions = [int(mv.version) for mv in client.search_model_versions(f"name = '{escaped}'")]
    if not versions:
        raise RegistryError(f"model {name!r} has no version")
    return max(versions)


def registry_expectations(mv: ModelVersion, expected: ModelBindings | None = None) -> ModelBindings:
    """The bindings a version must carry: name, version, logged model and run from the registry, plus
    the caller's ``expected`` datasets, gate reports and source (a caller's run or model id must agree)."""
    base = ModelBindings(name=mv.name, version=int(mv.version), model_id=model_id_of(mv.source),
                         run_id=mv.run_id or None)
    if expected is None:
        return base
    for field in ("name", "version", "model_id", "run_id"):
        want, registered = getattr(expected, field), getattr(base, field)
        if want is not None and registered is not None and want != registered:
            raise BindingMismatchError(
                f"expected {field} {want!r} but the registry has {registered!r} for {mv.name!r} v{mv.version}", field)
    return dataclasses.replace(base, source=expected.source, datasets=expected.datasets,
                               gate_reports=expected.gate_reports,
                               run_id=base.run_id or expected.run_id, model_id=base.model_id or expected.model_id)


def verify_registered_model(name: str, version: str | int | None = None, *, alias: str | None = None,
                            keys: TrustedKeys, client: MlflowClient | None = None,
                            expected: ModelBindings | None = None, dest_dir: str | os.PathLike[str] | None = None,
                            settings: Settings | None = None, workers: int | None = None,
                            progress: ProgressCallback | None = None) -> VerifiedModel:
    """Download, re-hash and verify a registered version (a number, or ``"latest"``); return its verified copy
    under ``dest_dir``.

    ``dest_dir`` defaults to ``<PIPESHIELD_HOME>/verified``; the copy lands in
    ``<dest_dir>/<name>/<version>`` (replacing an older copy) only when every check passed. Raises a
    ``SignatureError`` subclass naming the file or binding at fault, or ``RegistryError``.
    """
    settings = settings or Settings.load()
    client = client or MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    mv = get_version(client, name, version, alias)
    if not has_signature_tags(mv.tags):
        raise BindingMismatchError(f"{mv.name!r} v{mv.version} has no pipeshield signature tags: it was not "
                                   "registered through the signed registry", "tags")
    want = registry_expectations(mv, expected)
    root = Path(dest_dir) if dest_dir is not None else settings.home / "verified"
    final = root / mv.name / str(mv.version)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{mv.version}.", dir=final.parent))
    try:
        local = _origin.download(client, f"models:/{mv.name}/{mv.version}", staging / "model")
        contents = verify_or_raise(local, keys, expected=want, workers=workers, progress=progress)
        problem = tag_mismatch(mv.tags, contents)
        if problem:
            raise BindingMismatchError(f"{mv.name!r} v{mv.version}: {problem}", "tags")
        _make_read_only(local)
        _replace(local, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return VerifiedModel(path=final, name=mv.name, version=int(mv.version), root_digest=contents.root_digest,
                         content_digest=contents.content_digest, key_name=contents.key_name,
                         key_version=contents.key_version, run_id=contents.bindings.run_id,
                         model_id=contents.bindings.model_id, files=contents.files)


@contextlib.contextmanager
def resolve_registered_model(target: str, settings: Settings) -> Iterator[ResolvedModel]:
    """``pipeshield verify models:/<name>/<version>`` (entry point ``pipeshield.model_resolvers``: ``models``):
    a download in a temporary directory, with the name, version, logged model and run the registry implies."""
    name, version, alias = parse_models_uri(target)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    mv = get_version(client, name, version, alias)
    with tempfile.TemporaryDirectory(prefix="pipeshield-verify-") as tmp:
        local = _origin.download(client, f"models:/{mv.name}/{mv.version}", Path(tmp) / "model")
        yield ResolvedModel(local, registry_expectations(mv))


def _make_read_only(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _replace(source: Path, final: Path) -> None:
    """Move ``source`` to ``final``; an older copy at ``final`` is moved aside first, then removed."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(source, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
