"""Request pipeline: method mapping, token check, existence check, ACL, routing, response envelope."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import string
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from tests.vault_emulator import _errors
from tests.vault_emulator._acl import ACL, DEFAULT_POLICY, parse_policy
from tests.vault_emulator._errors import VaultError

NAME = r"\w(?:[\w.-]*\w)?"  # Vault GenericNameRegex (ASCII \w)
VERSION = "1.17.3"
_BASE62 = string.ascii_letters + string.digits
_SYS_INJECTED = re.compile(r"sys/(mounts|auth|policy)(/.*)?")


def random_id(length: int = 24) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def rfc3339(ts: float | None) -> str | None:
    """Go ``time.Time`` JSON form (RFC3339Nano, UTC) of a unix timestamp."""
    if ts is None:
        return None
    seconds = int(ts)
    nanos = int(round((ts - seconds) * 1e9))
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return base + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


@dataclasses.dataclass
class Response:
    data: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    warnings: list[str] | None = None
    status: int = 200  # batch operations with failed items answer 400 (or partial_failure_response_code)


@dataclasses.dataclass
class RawResponse:
    """A body sent as is, outside the envelope (``sys/health``); ``body=None`` sends none."""

    status: int
    body: dict[str, Any] | None


@dataclasses.dataclass
class Request:
    op: str  # read, list, create, update, delete, patch, header
    path: str  # full request path without /v1/ and without a leading "/"
    rel: str  # path relative to the mount
    data: dict[str, Any]
    core: Core
    mount: Mount
    token: Any = None  # tokens.Token of the caller (None on unauthenticated paths)
    remote_addr: str = "127.0.0.1"

    def has_sudo(self) -> bool:
        """Whether the caller's policies grant ``sudo`` on this request's path."""
        if self.token is None:
            return False
        acl = self.core.acl_for(self.token.policies)
        return acl.root or "sudo" in acl.capabilities(self.path) - {"deny"}


Handler = Callable[[Request, dict[str, str]], Response | RawResponse | None]


@dataclasses.dataclass
class Route:
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]
    exists: Callable[[Request, dict[str, str]], bool] | None = None
    unauthenticated: bool = False


def route(pattern: str, *, exists: Callable[[Request, dict[str, str]], bool] | None = None,
          unauthenticated: bool = False, **handlers: Handler) -> Route:
    return Route(re.compile(pattern, re.ASCII), handlers, exists, unauthenticated)


class Backend:
    """A secrets engine or auth method mounted at one path."""

    type = ""
    root_paths: tuple[str, ...] = ()  # sudo-protected, relative to the mount; a trailing "*" is a prefix

    def __init__(self, core: Core, mount: Mount) -> None:
        self.core = core
        self.mount = mount
        self.routes: list[Route] = []

    def match(self, rel: str) -> tuple[Route, dict[str, str]] | None:
        for candidate in self.routes:
            found = candidate.pattern.fullmatch(rel)
            if found:
                return candidate, {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    def is_root_path(self, rel: str) -> bool:
        for pattern in self.root_paths:
            if pattern.endswith("*") and rel.startswith(pattern[:-1]) or rel == pattern:
                return True
        return False


@dataclasses.dataclass
class Mount:
    path: str  # "transit/" or "auth/approle/"
    type: str
    accessor: str
    uuid: str
    description: str = ""
    options: dict[str, str] | None = None
    local: bool = False
    seal_wrap: bool = False
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    backend: Backend | None = None


class Core:
    """The whole emulated Vault: mounts, policies, tokens. One lock serialises requests."""

    def __init__(self, root_token: str, token_reviewer: Callable[[str, dict[str, Any]], bool] | None = None) -> None:
        from tests.vault_emulator import _sys, _tokens

        self.lock = threading.RLock()
        self.cluster_id = str(uuid.uuid4())
        self.cluster_name = "vault-cluster-" + secrets.token_hex(4)
        self.token_reviewer = token_reviewer or (lambda jwt, config: True)
        self.policies: dict[str, tuple[str, list]] = {"default": (DEFAULT_POLICY, parse_policy(DEFAULT_POLICY))}
        self.mounts: dict[str, Mount] = {}
        self._acl_cache: dict[tuple[str, ...], ACL] = {}
        self.tokens = _tokens.TokenStore(self)
        self.tokens.create_root(root_token)
        self.mount("sys/", "system", _sys.SysBackend, description="system endpoints used for control, policy and debugging")
        self.mount("identity/", "identity", Backend, description="identity store")
        self.mount("cubbyhole/", "cubbyhole", Backend, description="per-token private secret storage")
        self.mount("auth/token/", "token", _tokens.TokenBackend, description="token based credentials")

    # --- mounts ----------------------------------------------------------------
    def mount(self, path: str, type_: str, backend: type[Backend], **fields: Any) -> Mount:
        kind = type_ if type_ != "kv-v2" else "kv"
        entry = Mount(path=path, type=kind, accessor=f"{kind}_{secrets.token_hex(4)}", uuid=str(uuid.uuid4()), **fields)
        entry.backend = backend(self, entry)
        self.mounts[path] = entry
        return entry

    def find_mount(self, path: str) -> Mount | None:
        candidates = [m for p, m in self.mounts.items() if path.startswith(p) or path + "/" == p]
        return max(candidates, key=lambda m: len(m.path)) if candidates else None

    # --- policies ----------------------------------------------------------------
    def set_policy(self, name: str, text: str) -> None:
        self.policies[name] = (text, parse_policy(text))
        self._acl_cache.clear()

    def delete_policy(self, name: str) -> None:
        self.policies.pop(name, None)
        self._acl_cache.clear()

    def acl_for(self, policies: list[str]) -> ACL:
        key = tuple(policies)
        if key not in self._acl_cache:
            rules = [self.policies[p][1] for p in policies if p in self.policies]
            self._acl_cache[key] = ACL(rules, root="root" in policies)
        return self._acl_cache[key]

    # --- HTTP ---------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes,
               remote_addr: str) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            try:
                return self._handle(method, target, headers, body, remote_addr)
            except VaultError as exc:
                return _error(exc)
            except Exception as exc:  # a bug in the emulator is an internal error, as in Vault
                return _error(VaultError(500, f"1 error occurred:\n\t* {exc}\n\n"))

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes,
                remote_addr: str) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(target)
        raw_path = urllib.parse.unquote(parsed.path)
        if not raw_path.startswith("/v1/"):
            raise VaultError(404, "404 page not found")
        path = re.sub("/+", "/", raw_path[len("/v1/"):])
        namespace = headers.get("x-vault-namespace", "").strip("/")
        if namespace:
            path = f"{namespace}/{path}"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        if headers.get("x-vault-wrap-ttl"):
            raise VaultError(400, "response wrapping is not supported")
        op = {"GET": "read", "POST": "update", "PUT": "update", "DELETE": "delete", "LIST": "list",
              "PATCH": "patch", "HEAD": "header"}.get(method)
        if op is None:
            raise VaultError(405, "unsupported operation")
        if op == "read" and "list" in query:
            listing = query["list"][0]
            if listing in ("1", "t", "T", "TRUE", "true", "True"):
                op = "list"
            elif listing not in ("0", "f", "F", "FALSE", "false", "False"):
                raise VaultError(400, f"invalid value for 'list' parameter: {listing!r}")
        if op == "list" and not path.endswith("/"):
            path += "/"
        if op == "patch" and headers.get("content-type", "").split(";")[0].strip() != "application/merge-patch+json":
            raise VaultError(415, "PATCH requires Content-Type application/merge-patch+json")
        data = _request_data(op, query, headers, body)

        mount = self.find_mount(path)
        matched = mount.backend.match(path[len(mount.path):]) if mount and mount.backend else None
        request = Request(op=op, path=path, rel=path[len(mount.path):] if mount else path, data=data, core=self,
                          mount=mount, remote_addr=remote_addr)  # type: ignore[arg-type]
        if matched and matched[0].unauthenticated:
            route_, groups = matched
        else:
            token = self._authenticate(headers)
            request.token = token
            if matched and request.op == "update" and matched[0].exists is not None:
                request.op = "update" if matched[0].exists(request, matched[1]) else "create"
            sudo = bool(mount and mount.backend and mount.backend.is_root_path(request.rel))
            acl_op = request.op if request.op != "header" else "read"
            if not self.acl_for(token.policies).allows(path, acl_op, sudo=sudo):
                raise _errors.permission_denied()
            self.tokens.use(token)
            if matched is None:
                if mount is None or mount.backend is None or type(mount.backend) is Backend:
                    raise VaultError(404, f'no handler for route "{path}". route entry not found.')
                raise VaultError(404, _errors.UNSUPPORTED_PATH)
            route_, groups = matched
        handler = route_.handlers.get(request.op) or (
            route_.handlers.get("update") if request.op == "create" else None
        )
        if handler is None:
            raise VaultError(405, _errors.UNSUPPORTED_OPERATION)
        result = handler(request, groups)
        if request.token is not None:
            self.tokens.after_use(request.token)
        return self._render(request, result)

    def _authenticate(self, headers: dict[str, str]) -> Any:
        token_id = headers.get("x-vault-token", "")
        if not token_id and headers.get("authorization", "").lower().startswith("bearer "):
            token_id = headers["authorization"][7:].strip()
        if not token_id:
            raise _errors.permission_denied()
        token = self.tokens.lookup(token_id)
        if token is None:
            raise VaultError(403, _errors.INVALID_TOKEN)
        return token

    def _render(self, request: Request, result: Response | RawResponse | None) -> tuple[int, dict[str, str], bytes]:
        if isinstance(result, RawResponse):
            return result.status, {}, b"" if result.body is None else _json(result.body)
        if result is None:
            if request.op in ("read", "list"):
                raise VaultError(404)
            return 204, {}, b""
        if request.op == "list" and result.data is not None and not result.data.get("keys"):
            raise VaultError(404)
        envelope: dict[str, Any] = {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": _sorted(result.data),
            "wrap_info": None,
            "warnings": result.warnings,
            "auth": result.auth,
            "mount_type": request.mount.type if request.mount else "",
        }
        if _SYS_INJECTED.fullmatch(request.path.rstrip("/")) and result.data:
            envelope = _sorted({**envelope, **result.data})
        return result.status, {}, _json(envelope)

    def envelope_body(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        """The success envelope as a dict, for error statuses that carry one (KV v2 deleted versions)."""
        return json.loads(self._render(request, Response(data=data))[2])


def _request_data(op: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> dict[str, Any]:
    if op in ("read", "list", "delete", "header"):
        return {k: v[0] for k, v in query.items() if k != "list"}
    if not body.strip():
        return {}
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise VaultError(400, f"failed to parse JSON input: {exc}") from None
    if not isinstance(data, dict):
        raise VaultError(400, "failed to parse JSON input: json: cannot unmarshal into a map")
    return data


def _sorted(value: Any) -> Any:
    """Go marshals maps with sorted keys."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _json(value: Any) -> bytes:
    """Go ``json.Encoder`` output: compact, HTML-safe escapes, trailing newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return (text + "\n").encode()


def _error(exc: VaultError) -> tuple[int, dict[str, str], bytes]:
    return exc.status, {}, _json(exc.body if exc.body is not None else {"errors": exc.messages})
