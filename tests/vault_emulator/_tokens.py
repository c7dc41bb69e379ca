"""Token store (TTLs, expiry, parent/child revocation, use limits) and ``auth/token/*`` (spec §2.1, §3.5)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from tests.vault_emulator import _fields as f
from tests.vault_emulator._core import Backend, Core, Mount, Request, Response, random_id, rfc3339, route
from tests.vault_emulator._errors import VaultError

DEFAULT_TTL = 768 * 3600  # 2764800 s: system default and max lease TTL
MAX_TTL = DEFAULT_TTL


@dataclasses.dataclass
class Token:
    id: str
    accessor: str
    policies: list[str]
    path: str
    display_name: str
    meta: dict[str, str] | None
    creation_time: float
    creation_ttl: int  # seconds, 0 = never expires
    expire_time: float | None
    explicit_max_ttl: int = 0
    max_ttl: int = MAX_TTL
    period: int = 0
    renewable: bool = True
    num_uses: int = 0
    orphan: bool = False
    parent: str | None = None
    entity_id: str = ""
    identity_policies: list[str] = dataclasses.field(default_factory=list)
    token_policies: list[str] = dataclasses.field(default_factory=list)
    issue_time: float = 0.0
    last_renewal: float | None = None

    def ttl(self, now: float) -> int:
        return 0 if self.expire_time is None else max(0, round(self.expire_time - now))


def token_policies(policies: list[str], no_default: bool) -> list[str]:
    """Sorted, de-duplicated, with ``default`` unless excluded; ``root`` stands alone."""
    names = {p.strip().lower() for p in policies if p.strip()}
    if "root" in names:
        return ["root"]
    if not no_default:
        names.add("default")
    return sorted(names)


class TokenStore:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.by_id: dict[str, Token] = {}
        self.by_accessor: dict[str, str] = {}

    @staticmethod
    def now() -> float:
        return time.time()

    def create_root(self, token_id: str) -> Token:
        now = self.now()
        token = Token(id=token_id, accessor=random_id(24), policies=["root"], token_policies=["root"],
                      path="auth/token/root", display_name="root", meta=None, creation_time=now,
                      creation_ttl=0, expire_time=None, renewable=False, orphan=True, issue_time=now)
        self._add(token)
        return token

    def issue(self, *, policies: list[str], path: str, display_name: str, meta: dict[str, str] | None,
              ttl: int = 0, max_ttl: int = 0, explicit_max_ttl: int = 0, period: int = 0, renewable: bool = True,
              num_uses: int = 0, parent: Token | None = None, entity_id: str = "",
              token_id: str | None = None) -> Token:
        """Mint a service token. ``ttl``/``max_ttl`` 0 mean the system defaults."""
        now = self.now()
        max_ttl = min(max_ttl or MAX_TTL, MAX_TTL)
        effective = period or ttl or DEFAULT_TTL
        if not period:
            effective = min(effective, max_ttl)
        if explicit_max_ttl:
            effective = min(effective, explicit_max_ttl)
        expire = now + effective
        if parent is not None and parent.expire_time is not None:
            expire = min(expire, parent.expire_time)
        token = Token(
            id=token_id or "hvs." + random_id(24), accessor=random_id(24), policies=policies,
            token_policies=list(policies), path=path, display_name=display_name, meta=meta, creation_time=now,
            creation_ttl=int(round(expire - now)), expire_time=expire, explicit_max_ttl=explicit_max_ttl,
            max_ttl=max_ttl, period=period, renewable=renewable, num_uses=num_uses, orphan=parent is None,
            parent=parent.id if parent else None, entity_id=entity_id, issue_time=now,
        )
        self._add(token)
        return token

    def _add(self, token: Token) -> None:
        self.by_id[token.id] = token
        self.by_accessor[token.accessor] = token.id

    def lookup(self, token_id: str) -> Token | None:
        token = self.by_id.get(token_id)
        if token is None:
            return None
        if token.expire_time is not None and self.now() >= token.expire_time:
            self.revoke(token)
            return None
        return token

    def lookup_accessor(self, accessor: str) -> Token | None:
        token_id = self.by_accessor.get(accessor)
        return self.lookup(token_id) if token_id else None

    def revoke(self, token: Token, *, orphan_children: bool = False) -> None:
        self.by_id.pop(token.id, None)
        self.by_accessor.pop(token.accessor, None)
        for child in [t for t in self.by_id.values() if t.parent == token.id]:
            if orphan_children:
                child.parent, child.orphan = None, True
            else:
                self.revoke(child)

    def use(self, token: Token) -> None:
        """Count a use of a use-limited token (it is revoked after its last request)."""
        if token.num_uses > 0:
            token.num_uses -= 1
            if token.num_uses == 0:
                token.num_uses = -1  # exhausted: revoked once this request completes

    def after_use(self, token: Token) -> None:
        if token.num_uses == -1:
            self.revoke(token)

    def renew(self, token: Token, increment: int) -> None:
        if not token.renewable or token.expire_time is None:
            raise VaultError(400, "lease is not renewable")
        now = self.now()
        if token.period:
            ttl = token.period
        else:
            ttl = increment or token.creation_ttl or DEFAULT_TTL
            limit = token.creation_time + token.max_ttl - now
            ttl = min(ttl, int(limit))
        if token.explicit_max_ttl:
            ttl = min(ttl, int(token.creation_time + token.explicit_max_ttl - now))
        if ttl <= 0:
            raise VaultError(400, "past the max TTL, cannot renew")
        token.expire_time = now + ttl
        token.last_renewal = now

    def auth_block(self, token: Token) -> dict[str, Any]:
        """The ``auth`` object of a login or token-create response (Go ``HTTPAuth`` field order)."""
        block: dict[str, Any] = {
            "client_token": token.id,
            "accessor": token.accessor,
            "policies": token.policies,
            "token_policies": token.token_policies,
        }
        if token.identity_policies:
            block["identity_policies"] = token.identity_policies
        block.update({
            "metadata": token.meta,
            "lease_duration": token.ttl(self.now()),
            "renewable": token.renewable,
            "entity_id": token.entity_id,
            "token_type": "service",
            "orphan": token.orphan,
            "mfa_requirement": None,
            "num_uses": max(token.num_uses, 0),
        })
        return block

    def lookup_data(self, token: Token, *, include_id: bool = True) -> dict[str, Any]:
        now = self.now()
        data: dict[str, Any] = {
            "accessor": token.accessor,
            "creation_time": int(token.creation_time),
            "creation_ttl": token.creation_ttl,
            "display_name": token.display_name,
            "entity_id": token.entity_id,
            "expire_time": rfc3339(token.expire_time),
            "explicit_max_ttl": token.explicit_max_ttl,
            "id": token.id if include_id else "",
            "issue_time": rfc3339(token.issue_time),
            "meta": token.meta,
            "num_uses": max(token.num_uses, 0),
            "orphan": token.orphan,
            "path": token.path,
            "policies": token.policies,
            "renewable": token.renewable,
            "ttl": token.ttl(now),
            "type": "service",
        }
        if token.identity_policies:
            data["identity_policies"] = token.identity_policies
        if token.period:
            data["period"] = token.period
        if token.last_renewal is not None:
            data["last_renewal"] = rfc3339(token.last_renewal)
            data["last_renewal_time"] = int(token.last_renewal)
        return data


class TokenBackend(Backend):
    type = "token"
    root_paths = ("revoke-orphan", "revoke-orphan/*", "accessors*")

    def __init__(self, core: Core, mount: Mount) -> None:
        super().__init__(core, mount)
        self.store = core.tokens
        self.routes = [
            route(r"create(?:-orphan)?", update=self.create),
            route(r"lookup-self", read=self.lookup_self),
            route(r"lookup", read=self.lookup, update=self.lookup),
            route(r"lookup-accessor", update=self.lookup_accessor),
            route(r"renew-self", update=self.renew_self),
            route(r"renew", update=self.renew),
            route(r"revoke-self", update=self.revoke_self),
            route(r"revoke", update=self.revoke),
            route(r"revoke-accessor", update=self.revoke_accessor),
            route(r"revoke-orphan", update=self.revoke_orphan),
        ]

    def create(self, req: Request, _: dict[str, str]) -> Response:
        parent = req.token
        sudo = req.has_sudo()
        orphan = req.rel == "create-orphan" or f.boolean(req.data, "no_parent")
        if orphan and not sudo and req.rel != "create-orphan":
            raise VaultError(400, "root or sudo privileges required to create orphan token")
        period = f.duration(req.data, "period")
        if period and not sudo:
            raise VaultError(400, "root or sudo privileges required to create periodic token")
        token_id = f.text(req.data, "id") or None
        if token_id and not sudo:
            raise VaultError(400, "root or sudo privileges required to specify token id")
        if token_id and self.store.lookup(token_id):
            raise VaultError(400, "cannot create a token with a duplicate ID")
        no_default = f.boolean(req.data, "no_default_policy")
        if f.present(req.data, "policies"):
            requested = f.policy_list(req.data, "policies")
        else:
            requested = [p for p in parent.policies if not (no_default and p == "default")]
        policies = token_policies(requested, no_default)
        warnings = []
        if "root" not in parent.policies:
            parent_set = set(parent.policies)
            if not sudo and not set(policies) - {"default"} <= parent_set:
                raise VaultError(400, "child policies must be subset of parent")
            if "root" in policies:
                raise VaultError(400, "root tokens may not be created from a non-root token")
        for name in policies:
            if name not in ("root", "default") and name not in self.core.policies:
                warnings.append(f'Policy "{name}" does not exist')
        display = f.text(req.data, "display_name")
        display_name = "token" + (f"-{display}" if display else "")
        token = self.store.issue(
            policies=policies, path="auth/token/create" + ("-orphan" if req.rel == "create-orphan" else ""),
            display_name=display_name, meta=f.string_map(req.data, "meta"),
            ttl=f.duration(req.data, "ttl"), explicit_max_ttl=f.duration(req.data, "explicit_max_ttl"),
            period=period, renewable=f.boolean(req.data, "renewable", True), num_uses=f.integer(req.data, "num_uses"),
            parent=None if orphan else parent, token_id=token_id,
        )
        return Response(auth=self.store.auth_block(token), warnings=warnings or None)

    def lookup_self(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data=self.store.lookup_data(req.token))

    def lookup(self, req: Request, _: dict[str, str]) -> Response:
        token_id = f.text(req.data, "token")
        if not token_id:
            return self.lookup_self(req, _)
        token = self.store.lookup(token_id)
        if token is None:
            raise VaultError(403, "bad token")
        return Response(data=self.store.lookup_data(token))

    def lookup_accessor(self, req: Request, _: dict[str, str]) -> Response:
        accessor = f.text(req.data, "accessor")
        if not accessor:
            raise VaultError(400, "missing accessor")
        token = self.store.lookup_accessor(accessor)
        if token is None:
            raise VaultError(400, "invalid accessor")
        return Response(data=self.store.lookup_data(token, include_id=False))

    def renew_self(self, req: Request, _: dict[str, str]) -> Response:
        self.store.renew(req.token, f.duration(req.data, "increment"))
        return Response(auth=self.store.auth_block(req.token))

    def renew(self, req: Request, _: dict[str, str]) -> Response:
        token = self.store.lookup(f.text(req.data, "token"))
        if token is None:
            raise VaultError(400, "invalid token")
        self.store.renew(token, f.duration(req.data, "increment"))
        return Response(auth=self.store.auth_block(token))

    def revoke_self(self, req: Request, _: dict[str, str]) -> None:
        self.store.revoke(req.token)

    def revoke(self, req: Request, _: dict[str, str]) -> None:
        token_id = f.text(req.data, "token")
        if not token_id:
            raise VaultError(400, "missing token ID")
        token = self.store.lookup(token_id)
        if token is not None:
            self.store.revoke(token)

    def revoke_accessor(self, req: Request, _: dict[str, str]) -> None:
        token = self.store.lookup_accessor(f.text(req.data, "accessor"))
        if token is not None:
            self.store.revoke(token)

    def revoke_orphan(self, req: Request, _: dict[str, str]) -> None:
        token = self.store.lookup(f.text(req.data, "token"))
        if token is not None:
            self.store.revoke(token, orphan_children=True)
