"""KV secrets engine: version 2 (``data/``, ``metadata/``, ``delete/``, ``undelete/``, ``destroy/``; spec §3.9)
and a plain version 1 when mounted without ``options.version = "2"``."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from tests.vault_emulator import _fields as f
from tests.vault_emulator._core import Backend, Core, Mount, Request, Response, rfc3339, route
from tests.vault_emulator._errors import VaultError

DEFAULT_MAX_VERSIONS = 10


@dataclasses.dataclass
class Version:
    data: dict[str, Any] | None
    created: float
    deleted: float | None = None
    destroyed: bool = False

    def metadata(self, number: int, custom: dict[str, str] | None) -> dict[str, Any]:
        return {"created_time": rfc3339(self.created), "custom_metadata": custom,
                "deletion_time": rfc3339(self.deleted) or "", "destroyed": self.destroyed, "version": number}


@dataclasses.dataclass
class Secret:
    versions: dict[int, Version] = dataclasses.field(default_factory=dict)
    current: int = 0
    oldest: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"
    custom_metadata: dict[str, str] | None = None
    created: float = dataclasses.field(default_factory=time.time)
    updated: float = dataclasses.field(default_factory=time.time)


def _list_children(paths: list[str], prefix: str) -> list[str]:
    keys = set()
    for path in paths:
        if path.startswith(prefix) and path != prefix:
            rest = path[len(prefix):]
            keys.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
    return sorted(keys)


class KVBackend(Backend):
    type = "kv"

    def __init__(self, core: Core, mount: Mount) -> None:
        super().__init__(core, mount)
        self.secrets: dict[str, Secret] = {}
        self.plain: dict[str, dict[str, Any]] = {}
        if (mount.options or {}).get("version") == "2":
            self.routes = [
                route(r"data/(?P<path>.+)", read=self.read, update=self.write, delete=self.delete_latest,
                      exists=self._exists),
                route(r"metadata/?(?P<path>.*)", read=self.read_metadata, update=self.write_metadata,
                      delete=self.delete_metadata, list=self.list, exists=self._exists),
                route(r"delete/(?P<path>.+)", update=self.delete_versions),
                route(r"undelete/(?P<path>.+)", update=self.undelete),
                route(r"destroy/(?P<path>.+)", update=self.destroy),
            ]
        else:
            self.routes = [route(r"(?P<path>.*)", read=self.v1_read, update=self.v1_write, delete=self.v1_delete,
                                 list=self.v1_list)]

    # --- version 1 ---------------------------------------------------------------
    def v1_read(self, req: Request, groups: dict[str, str]) -> Response | None:
        value = self.plain.get(groups["path"])
        return None if value is None else Response(data=value)

    def v1_write(self, req: Request, groups: dict[str, str]) -> None:
        if not req.data:
            raise VaultError(400, "missing data fields")
        self.plain[groups["path"]] = dict(req.data)

    def v1_delete(self, req: Request, groups: dict[str, str]) -> None:
        self.plain.pop(groups["path"], None)

    def v1_list(self, req: Request, groups: dict[str, str]) -> Response:
        return Response(data={"keys": _list_children(list(self.plain), groups["path"])})

    # --- version 2 -----------------------------------------------------------------
    def _exists(self, req: Request, groups: dict[str, str]) -> bool:
        return groups["path"] in self.secrets

    def read(self, req: Request, groups: dict[str, str]) -> Response | None:
        secret = self.secrets.get(groups["path"])
        if secret is None:
            return None
        number = f.integer(req.data, "version") or secret.current
        version = secret.versions.get(number)
        if version is None:
            return None
        out = {"data": version.data, "metadata": version.metadata(number, secret.custom_metadata)}
        if version.deleted is not None or version.destroyed:
            raise VaultError(404, body=self.core.envelope_body(req, {**out, "data": None}))
        return Response(data=out)

    def write(self, req: Request, groups: dict[str, str]) -> Response:
        path = groups["path"]
        data = req.data.get("data")
        if not isinstance(data, dict):
            raise VaultError(400, "no data provided")
        options = req.data.get("options") or {}
        secret = self.secrets.get(path)
        current = secret.current if secret else 0
        cas_required = bool(secret and secret.cas_required)
        if "cas" in options and options["cas"] is not None:
            if f.integer(options, "cas") != current:
                raise VaultError(400, "check-and-set parameter did not match the current version")
        elif cas_required:
            raise VaultError(400, "check-and-set parameter required for this call")
        if secret is None:
            secret = self.secrets[path] = Secret()
        now = time.time()
        secret.current += 1
        secret.versions[secret.current] = Version(data=data, created=now)
        secret.updated = now
        keep = secret.max_versions or DEFAULT_MAX_VERSIONS
        for number in sorted(secret.versions)[:-keep]:
            del secret.versions[number]
        secret.oldest = min(secret.versions)
        return Response(data=secret.versions[secret.current].metadata(secret.current, secret.custom_metadata))

    def delete_latest(self, req: Request, groups: dict[str, str]) -> None:
        secret = self.secrets.get(groups["path"])
        if secret and secret.current in secret.versions:
            secret.versions[secret.current].deleted = time.time()

    def _versions(self, req: Request) -> list[int]:
        versions = req.data.get("versions")
        if not versions:
            raise VaultError(400, "no version number provided")
        return [int(v) for v in (versions if isinstance(versions, list) else str(versions).split(","))]

    def delete_versions(self, req: Request, groups: dict[str, str]) -> None:
        secret = self.secrets.get(groups["path"])
        for number in self._versions(req):
            if secret and number in secret.versions and not secret.versions[number].destroyed:
                secret.versions[number].deleted = time.time()

    def undelete(self, req: Request, groups: dict[str, str]) -> None:
        secret = self.secrets.get(groups["path"])
        for number in self._versions(req):
            if secret and number in secret.versions and not secret.versions[number].destroyed:
                secret.versions[number].deleted = None

    def destroy(self, req: Request, groups: dict[str, str]) -> None:
        secret = self.secrets.get(groups["path"])
        for number in self._versions(req):
            if secret and number in secret.versions:
                secret.versions[number].destroyed = True
                secret.versions[number].data = None

    def read_metadata(self, req: Request, groups: dict[str, str]) -> Response | None:
        secret = self.secrets.get(groups["path"])
        if secret is None:
            return None
        return Response(data={
            "cas_required": secret.cas_required, "created_time": rfc3339(secret.created),
            "current_version": secret.current, "custom_metadata": secret.custom_metadata,
            "delete_version_after": secret.delete_version_after, "max_versions": secret.max_versions,
            "oldest_version": secret.oldest, "updated_time": rfc3339(secret.updated),
            "versions": {str(n): {"created_time": rfc3339(v.created), "deletion_time": rfc3339(v.deleted) or "",
                                  "destroyed": v.destroyed} for n, v in secret.versions.items()},
        })

    def write_metadata(self, req: Request, groups: dict[str, str]) -> None:
        path = groups["path"]
        if not path:
            raise VaultError(400, "missing path")
        secret = self.secrets.setdefault(path, Secret())
        if f.present(req.data, "max_versions"):
            secret.max_versions = f.integer(req.data, "max_versions")
        if f.present(req.data, "cas_required"):
            secret.cas_required = f.boolean(req.data, "cas_required")
        if f.present(req.data, "delete_version_after"):
            secret.delete_version_after = f"{f.duration(req.data, 'delete_version_after')}s"
        if f.present(req.data, "custom_metadata"):
            secret.custom_metadata = f.string_map(req.data, "custom_metadata")
        secret.updated = time.time()

    def delete_metadata(self, req: Request, groups: dict[str, str]) -> None:
        self.secrets.pop(groups["path"], None)

    def list(self, req: Request, groups: dict[str, str]) -> Response:
        return Response(data={"keys": _list_children(list(self.secrets), groups["path"])})
