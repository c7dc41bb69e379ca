"""``sys/``: health, secrets-engine and auth-method mounts, ACL policies (spec §3.1-3.4)."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from tests.vault_emulator import _fields as f
from tests.vault_emulator._acl import PolicyError, parse_policy
from tests.vault_emulator._core import VERSION, Backend, Core, Mount, RawResponse, Request, Response, route
from tests.vault_emulator._errors import VaultError

_PROTECTED = ("sys/", "auth/", "cubbyhole/", "identity/", "audit/")


def _secret_backends() -> dict[str, Any]:
    from tests.vault_emulator._kv import KVBackend
    from tests.vault_emulator._transit import TransitBackend

    return {"transit": TransitBackend, "kv": KVBackend, "kv-v2": KVBackend}


def _auth_backends() -> dict[str, Any]:
    from tests.vault_emulator._approle import AppRoleBackend
    from tests.vault_emulator._kubernetes import KubernetesBackend

    return {"approle": AppRoleBackend, "kubernetes": KubernetesBackend}


def _mount_path(raw: str) -> str:
    path = raw.strip("/")
    if not path:
        raise VaultError(400, "missing mount path")
    return path + "/"


class SysBackend(Backend):
    type = "system"
    root_paths = ("auth/*", "audit", "audit/*", "remount", "rotate", "seal", "raw", "raw/*",
                  "leases/revoke-prefix/*", "leases/revoke-force/*", "leases/lookup/*")

    def __init__(self, core: Core, mount: Mount) -> None:
        super().__init__(core, mount)
        self.routes = [
            route(r"health", unauthenticated=True, read=self.health, header=self.health),
            route(r"mounts", read=self.list_mounts),
            route(r"mounts/(?P<path>.+)", update=self.enable_engine, delete=self.disable_engine),
            route(r"auth", read=self.list_auth),
            route(r"auth/(?P<path>.+)", update=self.enable_auth, delete=self.disable_auth),
            route(r"policies/acl/?", list=self.list_policies),
            route(r"policies/acl/(?P<name>[^/]+)", read=self.read_policy, update=self.write_policy,
                  delete=self.delete_policy),
            route(r"policy/?", read=self.legacy_list, list=self.list_policies),
            route(r"policy/(?P<name>[^/]+)", read=self.legacy_read, update=self.write_policy,
                  delete=self.delete_policy),
        ]

    # --- health ----------------------------------------------------------------
    def health(self, req: Request, _: dict[str, str]) -> RawResponse:
        status = f.integer(req.data, "activecode", 200)
        body = {
            "initialized": True, "sealed": False, "standby": False, "performance_standby": False,
            "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()), "version": VERSION,
            "cluster_name": self.core.cluster_name, "cluster_id": self.core.cluster_id,
        }
        return RawResponse(status, None if req.op == "header" else body)

    # --- mounts ----------------------------------------------------------------
    def _entry(self, mount: Mount) -> dict[str, Any]:
        config: dict[str, Any] = {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0}
        if mount.path.startswith("auth/"):
            config["token_type"] = "default-service"
        return {
            "accessor": mount.accessor, "config": config, "description": mount.description,
            "external_entropy_access": False, "local": mount.local, "options": mount.options,
            "plugin_version": "", "running_plugin_version": f"v{VERSION}+builtin.vault", "running_sha256": "",
            "seal_wrap": mount.seal_wrap, "type": mount.type, "uuid": mount.uuid,
        }

    def list_mounts(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data={m.path: self._entry(m) for m in self.core.mounts.values() if not m.path.startswith("auth/")})

    def list_auth(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data={m.path[len("auth/"):]: self._entry(m) for m in self.core.mounts.values()
                              if m.path.startswith("auth/")})

    def _mount(self, req: Request, path: str, backends: dict[str, Any]) -> None:
        type_ = f.text(req.data, "type")
        if not type_:
            raise VaultError(400, "backend type must be specified as a string")
        if type_ not in backends:
            if type_ == "token":
                raise VaultError(400, "token credential backend cannot be instantiated")
            raise VaultError(400, f"plugin not found in the catalog: {type_}")
        for existing in self.core.mounts:
            if path.startswith(existing) or existing.startswith(path):
                shown = existing.removeprefix("auth/") if path.startswith("auth/") else existing
                raise VaultError(409, f"path is already in use at {shown}")
        options = f.string_map(req.data, "options")
        if type_ == "kv-v2":
            options = {**(options or {}), "version": "2"}
        self.core.mount(path, type_, backends[type_], description=f.text(req.data, "description"),
                        options=options, local=f.boolean(req.data, "local"), seal_wrap=f.boolean(req.data, "seal_wrap"))

    def enable_engine(self, req: Request, groups: dict[str, str]) -> None:
        path = _mount_path(groups["path"])
        if path.endswith("/tune/"):
            raise VaultError(405, "unsupported operation")
        if any(path.startswith(p) for p in _PROTECTED):
            raise VaultError(400, f"cannot mount '{path}'")
        self._mount(req, path, _secret_backends())

    def disable_engine(self, req: Request, groups: dict[str, str]) -> None:
        path = _mount_path(groups["path"])
        if any(path.startswith(p) for p in _PROTECTED):
            raise VaultError(400, f"cannot unmount '{path}'")
        self.core.mounts.pop(path, None)

    def enable_auth(self, req: Request, groups: dict[str, str]) -> None:
        self._mount(req, "auth/" + _mount_path(groups["path"]), _auth_backends())

    def disable_auth(self, req: Request, groups: dict[str, str]) -> None:
        path = "auth/" + _mount_path(groups["path"])
        if path == "auth/token/":
            raise VaultError(400, "token credential backend cannot be disabled")
        if self.core.mounts.pop(path, None) is not None:
            for token in list(self.core.tokens.by_id.values()):
                if token.path.startswith(path):
                    self.core.tokens.revoke(token)

    # --- policies ----------------------------------------------------------------
    def list_policies(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data={"keys": sorted({*self.core.policies, "root"})})

    def legacy_list(self, req: Request, _: dict[str, str]) -> Response:
        names = sorted({*self.core.policies, "root"})
        return Response(data={"keys": names, "policies": names})

    def _policy_text(self, name: str) -> str | None:
        if name == "root":
            return ""
        entry = self.core.policies.get(name)
        return entry[0] if entry else None

    def read_policy(self, req: Request, groups: dict[str, str]) -> Response | None:
        name = groups["name"].lower()
        text = self._policy_text(name)
        return None if text is None else Response(data={"name": name, "policy": text})

    def legacy_read(self, req: Request, groups: dict[str, str]) -> Response | None:
        name = groups["name"].lower()
        text = self._policy_text(name)
        return None if text is None else Response(data={"name": name, "rules": text})

    def write_policy(self, req: Request, groups: dict[str, str]) -> Response | None:
        name = groups["name"]
        warnings = []
        text = f.text(req.data, "policy")
        if not text and req.path.startswith("sys/policy/") and f.text(req.data, "rules"):
            text = f.text(req.data, "rules")
            warnings.append("'rules' is deprecated, please use 'policy' instead")
        if not text:
            raise VaultError(400, "'policy' parameter not supplied or empty")
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            pass
        if name.lower() != name:
            warnings.append(f"policy name was converted to {name.lower()}")
            name = name.lower()
        if name == "root":
            raise VaultError(400, 'cannot update "root" policy')
        try:
            parse_policy(text)
        except PolicyError as exc:
            raise VaultError(400, f"failed to parse policy: {exc}") from None
        self.core.set_policy(name, text)
        return Response(warnings=warnings) if warnings else None

    def delete_policy(self, req: Request, groups: dict[str, str]) -> None:
        name = groups["name"].lower()
        if name == "root":
            raise VaultError(400, 'cannot delete "root" policy')
        if name == "default":
            raise VaultError(400, "cannot delete default policy")
        self.core.delete_policy(name)
