"""AppRole auth method (spec §3.6): roles, role ids, secret ids (TTL, use limits, CIDRs), login."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import time
import uuid
from typing import Any

from tests.vault_emulator import _fields as f
from tests.vault_emulator._core import NAME, Backend, Core, Mount, Request, Response, rfc3339, route
from tests.vault_emulator._errors import VaultError
from tests.vault_emulator._tokens import token_policies

INVALID = "invalid role or secret ID"


@dataclasses.dataclass
class SecretId:
    accessor: str
    metadata: dict[str, str]
    num_uses: int
    expires: float | None
    cidr_list: list[str]
    token_bound_cidrs: list[str]
    created: float


def token_fields(data: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The common ``token_*`` role fields (with legacy ``policies``/``period``), updated from ``data``."""
    out = dict(current)
    for name in ("token_ttl", "token_max_ttl", "token_explicit_max_ttl", "token_period"):
        if f.present(data, name):
            out[name] = f.duration(data, name)
    for name in ("token_bound_cidrs",):
        if f.present(data, name):
            out[name] = f.comma_list(data, name)
    if f.present(data, "token_policies"):
        out["token_policies"] = f.policy_list(data, "token_policies")
    elif f.present(data, "policies"):
        out["token_policies"] = out["policies"] = f.policy_list(data, "policies")
    if f.present(data, "period") and not f.present(data, "token_period"):
        out["token_period"] = out["period"] = f.duration(data, "period")
    for name in ("ttl", "max_ttl"):
        if f.present(data, name) and not f.present(data, "token_" + name):
            out["token_" + name] = f.duration(data, name)
    if f.present(data, "token_no_default_policy"):
        out["token_no_default_policy"] = f.boolean(data, "token_no_default_policy")
    if f.present(data, "token_num_uses"):
        out["token_num_uses"] = f.integer(data, "token_num_uses")
    if f.present(data, "token_type"):
        kind = f.text(data, "token_type")
        if kind not in ("default", "service", "default-service"):
            raise VaultError(400, f"invalid 'token_type' value {kind!r}")
        out["token_type"] = kind
    return out


TOKEN_DEFAULTS: dict[str, Any] = {
    "token_bound_cidrs": [], "token_explicit_max_ttl": 0, "token_max_ttl": 0, "token_no_default_policy": False,
    "token_num_uses": 0, "token_period": 0, "token_policies": [], "token_ttl": 0, "token_type": "default",
}


def issue_login_token(req: Request, role: dict[str, Any], *, display_name: str, metadata: dict[str, str],
                      entity_id: str) -> dict[str, Any]:
    """Mint the orphan, renewable login token a role describes and return the ``auth`` block."""
    store = req.core.tokens
    token = store.issue(
        policies=token_policies(role["token_policies"], role["token_no_default_policy"]), path=req.path,
        display_name=display_name, meta=metadata, ttl=role["token_ttl"], max_ttl=role["token_max_ttl"],
        explicit_max_ttl=role["token_explicit_max_ttl"], period=role["token_period"],
        num_uses=role["token_num_uses"], entity_id=entity_id,
    )
    return store.auth_block(token)


def _in_cidrs(address: str, cidrs: list[str]) -> bool:
    if not cidrs:
        return True
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)


class AppRoleBackend(Backend):
    type = "approle"

    def __init__(self, core: Core, mount: Mount) -> None:
        super().__init__(core, mount)
        self.roles: dict[str, dict[str, Any]] = {}
        self.secret_ids: dict[str, dict[str, SecretId]] = {}  # role -> secret id -> entry
        self.entities: dict[str, str] = {}
        n = NAME
        self.routes = [
            route(r"login", unauthenticated=True, update=self.login),
            route(r"role/?", list=self.list_roles),
            route(rf"role/(?P<role>{n})", read=self.read_role, update=self.write_role, delete=self.delete_role,
                  exists=lambda req, g: g["role"] in self.roles),
            route(rf"role/(?P<role>{n})/role-id", read=self.read_role_id, update=self.write_role_id),
            route(rf"role/(?P<role>{n})/secret-id/?", update=self.generate_secret_id, list=self.list_secret_ids),
            route(rf"role/(?P<role>{n})/secret-id/lookup", update=self.lookup_secret_id),
            route(rf"role/(?P<role>{n})/secret-id/destroy", update=self.destroy_secret_id,
                  delete=self.destroy_secret_id),
            route(rf"role/(?P<role>{n})/secret-id-accessor/lookup", update=self.lookup_accessor),
            route(rf"role/(?P<role>{n})/secret-id-accessor/destroy", update=self.destroy_accessor,
                  delete=self.destroy_accessor),
        ]

    def _role(self, name: str) -> dict[str, Any]:
        role = self.roles.get(name)
        if role is None:
            raise VaultError(404, f'role "{name}" does not exist')
        return role

    # --- roles ------------------------------------------------------------------------
    def list_roles(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data={"keys": sorted(self.roles)})

    def write_role(self, req: Request, groups: dict[str, str]) -> None:
        name, data = groups["role"], req.data
        role = self.roles.get(name) or {
            "role_id": str(uuid.uuid4()), "bind_secret_id": True, "secret_id_bound_cidrs": [],
            "secret_id_num_uses": 0, "secret_id_ttl": 0, "local_secret_ids": False, **TOKEN_DEFAULTS,
        }
        role = token_fields(data, role)
        if f.present(data, "bind_secret_id"):
            role["bind_secret_id"] = f.boolean(data, "bind_secret_id")
        for field in ("secret_id_bound_cidrs", "bound_cidr_list"):
            if f.present(data, field):
                role["secret_id_bound_cidrs"] = f.comma_list(data, field)
        if f.present(data, "secret_id_num_uses"):
            uses = f.integer(data, "secret_id_num_uses")
            if uses < 0:
                raise VaultError(400, "secret_id_num_uses cannot be negative")
            role["secret_id_num_uses"] = uses
        if f.present(data, "secret_id_ttl"):
            role["secret_id_ttl"] = f.duration(data, "secret_id_ttl")
        if f.present(data, "local_secret_ids") and name not in self.roles:
            role["local_secret_ids"] = f.boolean(data, "local_secret_ids")
        if not role["bind_secret_id"] and not role["secret_id_bound_cidrs"] and not role["token_bound_cidrs"]:
            raise VaultError(400, "at least one constraint should be enabled on the role")
        if role["token_max_ttl"] and role["token_ttl"] > role["token_max_ttl"]:
            raise VaultError(400, "'token_ttl' cannot be greater than 'token_max_ttl'")
        self.roles[name] = role
        self.secret_ids.setdefault(name, {})

    def read_role(self, req: Request, groups: dict[str, str]) -> Response | None:
        role = self.roles.get(groups["role"])
        if role is None:
            return None
        data = {k: v for k, v in role.items() if k != "role_id"}
        return Response(data=data)

    def delete_role(self, req: Request, groups: dict[str, str]) -> None:
        self.roles.pop(groups["role"], None)
        self.secret_ids.pop(groups["role"], None)

    def read_role_id(self, req: Request, groups: dict[str, str]) -> Response | None:
        role = self.roles.get(groups["role"])
        return None if role is None else Response(data={"role_id": role["role_id"]})

    def write_role_id(self, req: Request, groups: dict[str, str]) -> None:
        role = self._role(groups["role"])
        role_id = f.text(req.data, "role_id")
        if not role_id:
            raise VaultError(400, "missing role_id")
        role["role_id"] = role_id

    # --- secret ids ---------------------------------------------------------------------
    def generate_secret_id(self, req: Request, groups: dict[str, str]) -> Response:
        name, data = groups["role"], req.data
        role = self._role(name)
        if not role["bind_secret_id"]:
            raise VaultError(400, "bind_secret_id is not set on the role")
        metadata_raw = f.text(data, "metadata")
        metadata: dict[str, str] = {}
        if metadata_raw:
            try:
                parsed = json.loads(metadata_raw)
            except ValueError:
                raise VaultError(400, "failed to parse metadata") from None
            if not isinstance(parsed, dict):
                raise VaultError(400, "failed to parse metadata")
            metadata = {str(k): str(v) for k, v in parsed.items()}
        num_uses = f.integer(data, "num_uses", role["secret_id_num_uses"])
        if num_uses < 0:
            raise VaultError(400, "num_uses cannot be negative")
        if role["secret_id_num_uses"] and (num_uses == 0 or num_uses > role["secret_id_num_uses"]):
            raise VaultError(400, "num_uses cannot be higher than the role's secret_id_num_uses")
        ttl = f.duration(data, "ttl", role["secret_id_ttl"])
        if role["secret_id_ttl"] and (ttl == 0 or ttl > role["secret_id_ttl"]):
            raise VaultError(400, "ttl cannot be longer than the role's secret_id_ttl")
        secret_id = str(uuid.uuid4())
        now = time.time()
        entry = SecretId(accessor=str(uuid.uuid4()), metadata=metadata, num_uses=num_uses,
                         expires=now + ttl if ttl else None, cidr_list=f.comma_list(data, "cidr_list"),
                         token_bound_cidrs=f.comma_list(data, "token_bound_cidrs"), created=now)
        self.secret_ids[name][secret_id] = entry
        return Response(data={"secret_id": secret_id, "secret_id_accessor": entry.accessor,
                              "secret_id_ttl": ttl, "secret_id_num_uses": num_uses})

    def _live_secret_ids(self, role: str) -> dict[str, SecretId]:
        now = time.time()
        entries = self.secret_ids.get(role, {})
        for secret_id in [s for s, e in entries.items() if e.expires is not None and now >= e.expires]:
            del entries[secret_id]
        return entries

    def list_secret_ids(self, req: Request, groups: dict[str, str]) -> Response:
        self._role(groups["role"])
        return Response(data={"keys": sorted(e.accessor for e in self._live_secret_ids(groups["role"]).values())})

    @staticmethod
    def _describe(entry: SecretId) -> dict[str, Any]:
        return {"cidr_list": entry.cidr_list, "creation_time": rfc3339(entry.created),
                "expiration_time": rfc3339(entry.expires) or "0001-01-01T00:00:00Z",
                "last_updated_time": rfc3339(entry.created), "metadata": entry.metadata,
                "secret_id_accessor": entry.accessor, "secret_id_num_uses": entry.num_uses,
                "secret_id_ttl": int(entry.expires - entry.created) if entry.expires else 0,
                "token_bound_cidrs": entry.token_bound_cidrs}

    def lookup_secret_id(self, req: Request, groups: dict[str, str]) -> Response | None:
        self._role(groups["role"])
        entry = self._live_secret_ids(groups["role"]).get(f.text(req.data, "secret_id"))
        return None if entry is None else Response(data=self._describe(entry))

    def destroy_secret_id(self, req: Request, groups: dict[str, str]) -> None:
        self._role(groups["role"])
        self._live_secret_ids(groups["role"]).pop(f.text(req.data, "secret_id"), None)

    def _by_accessor(self, role: str, accessor: str) -> tuple[str, SecretId] | None:
        for secret_id, entry in self._live_secret_ids(role).items():
            if entry.accessor == accessor:
                return secret_id, entry
        return None

    def lookup_accessor(self, req: Request, groups: dict[str, str]) -> Response | None:
        self._role(groups["role"])
        found = self._by_accessor(groups["role"], f.text(req.data, "secret_id_accessor"))
        return None if found is None else Response(data=self._describe(found[1]))

    def destroy_accessor(self, req: Request, groups: dict[str, str]) -> None:
        self._role(groups["role"])
        found = self._by_accessor(groups["role"], f.text(req.data, "secret_id_accessor"))
        if found is None:
            raise VaultError(400, "failed to find accessor entry for secret_id_accessor")
        del self.secret_ids[groups["role"]][found[0]]

    # --- login ------------------------------------------------------------------------------
    def login(self, req: Request, _: dict[str, str]) -> Response:
        role_id = f.text(req.data, "role_id")
        if not role_id:
            raise VaultError(400, "missing role_id")
        name = next((n for n, r in self.roles.items() if r["role_id"] == role_id), None)
        if name is None:
            raise VaultError(400, INVALID)
        role = self.roles[name]
        metadata: dict[str, str] = {}
        if role["bind_secret_id"]:
            secret_id = f.text(req.data, "secret_id")
            if not secret_id:
                raise VaultError(400, "missing secret_id")
            entries = self._live_secret_ids(name)
            entry = entries.get(secret_id)
            if entry is None:
                raise VaultError(400, INVALID)
            if not _in_cidrs(req.remote_addr, entry.cidr_list):
                raise VaultError(400, f"source address {req.remote_addr!r} unauthorized through CIDR restrictions on the secret ID")
            if entry.num_uses:
                entry.num_uses -= 1
                if entry.num_uses == 0:
                    del entries[secret_id]
            metadata.update(entry.metadata)
        if not _in_cidrs(req.remote_addr, role["secret_id_bound_cidrs"]):
            raise VaultError(400, f"source address {req.remote_addr!r} unauthorized by CIDR restrictions on the role")
        metadata["role_name"] = name
        entity = self.entities.setdefault(role_id, str(uuid.uuid4()))
        auth = issue_login_token(req, role, display_name=self.mount.path[5:-1].replace("/", "-"), metadata=metadata, entity_id=entity)
        return Response(auth=auth)
