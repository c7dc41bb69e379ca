"""ACL policies: HCL/JSON parsing (spec §2.3) and Vault's rule matching and priority (§2.4-2.6)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import hcl

CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover")
_PATH_KEYS = {
    "capabilities", "policy", "allowed_parameters", "denied_parameters", "required_parameters",
    "min_wrapping_ttl", "max_wrapping_ttl", "mfa_methods", "control_group",
}
_LEGACY = {
    "deny": {"deny"},
    "read": {"read", "list"},
    "write": {"create", "read", "update", "delete", "list"},
    "sudo": {"create", "read", "update", "delete", "list", "sudo"},
}

DEFAULT_POLICY = """
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}

# Allow a token to look up its resultant ACL from all policies
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/leases/renew" {
    capabilities = ["update"]
}
path "sys/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow checking the status of a Control Group request if the user has the
# accessor
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
""".lstrip()


class PolicyError(ValueError):
    """The policy text does not parse; the message is what Vault reports after ``failed to parse policy:``."""


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # as written, leading "/" stripped
    capabilities: frozenset[str]


def parse_policy(text: str) -> list[Rule]:
    """Rules of an HCL or JSON policy document, validated as Vault's ``parsePaths`` does."""
    try:
        doc = hcl.loads(text)
    except Exception as exc:  # pyhcl raises ValueError subclasses and lexer errors
        raise PolicyError(str(exc)) from None
    if not isinstance(doc, dict):
        raise PolicyError("policy must be an object")
    unknown = set(doc) - {"name", "path"}
    if unknown:
        raise PolicyError(f"invalid key {sorted(unknown)[0]!r}")
    paths = doc.get("path", {})
    blocks: list[tuple[str, dict[str, Any]]] = []
    for pattern, body in (paths.items() if isinstance(paths, dict) else []):
        for block in body if isinstance(body, list) else [body]:
            blocks.append((pattern, block))
    rules = []
    for pattern, block in blocks:
        if not isinstance(block, dict):
            raise PolicyError(f'path "{pattern}": expected an object')
        for key in block:
            if key not in _PATH_KEYS:
                raise PolicyError(f'path "{pattern}": invalid key "{key}"')
        pattern = pattern.removeprefix("/")
        if "+*" in pattern:
            raise PolicyError(f"path {pattern!r}: invalid use of wildcards ('+*' is forbidden)")
        caps: set[str] = set()
        legacy = block.get("policy")
        if legacy is not None:
            if legacy not in _LEGACY:
                raise PolicyError(f'path "{pattern}": invalid policy "{legacy}"')
            caps |= _LEGACY[legacy]
        for cap in block.get("capabilities", []) or []:
            if cap not in CAPABILITIES:
                raise PolicyError(f'path "{pattern}": invalid capability "{cap}"')
            caps.add(cap)
        if "deny" in caps:
            caps = {"deny"}
        rules.append(Rule(pattern, frozenset(caps)))
    return rules


def _has_segment_wildcards(pattern: str) -> bool:
    return pattern == "+" or pattern.startswith("+/") or "/+" in pattern


def _merge(current: frozenset[str] | None, new: frozenset[str]) -> frozenset[str]:
    if current is None:
        return new
    if "deny" in current or "deny" in new:
        return frozenset({"deny"})
    return current | new


class ACL:
    """The merged rules of a token's policies. ``root`` allows everything."""

    def __init__(self, policies: Iterable[list[Rule]], *, root: bool = False) -> None:
        self.root = root
        self._exact: dict[str, frozenset[str]] = {}
        self._prefix: dict[str, frozenset[str]] = {}
        self._segment: dict[str, frozenset[str]] = {}
        for rules in policies:
            for rule in rules:
                pattern = rule.pattern
                if _has_segment_wildcards(pattern):
                    table, key = self._segment, pattern
                elif pattern.endswith("*"):
                    table, key = self._prefix, pattern[:-1]
                else:
                    table, key = self._exact, pattern
                table[key] = _merge(table.get(key), rule.capabilities)

    def capabilities(self, path: str, *, listing: bool = False) -> frozenset[str]:
        """Capabilities the single winning rule grants on ``path`` (empty when no rule applies)."""
        if self.root:
            return frozenset({"root"})
        if path in self._exact:
            return self._exact[path]
        if listing and path.endswith("/") and path[:-1] in self._exact:
            return self._exact[path[:-1]]
        return self._non_exact(path) or frozenset()

    def _non_exact(self, path: str) -> frozenset[str] | None:
        # (first wildcard/glob position, is_prefix, wildcards, pattern) per candidate
        candidates: list[tuple[int, bool, int, str, frozenset[str]]] = []
        prefixes = [p for p in self._prefix if path.startswith(p)]
        if prefixes:
            longest = max(prefixes, key=len)
            candidates.append((len(longest), True, 0, longest, self._prefix[longest]))
        parts = path.split("/")
        for full, caps in self._segment.items():
            first = full.index("+")
            is_prefix = full.endswith("*")
            current = full[:-1] if is_prefix else full
            acl_parts = current.split("/")
            if len(parts) < len(acl_parts) or (not is_prefix and len(parts) != len(acl_parts)):
                continue
            wildcards = 0
            for i, acl_part in enumerate(acl_parts):
                if acl_part == "+":
                    wildcards += 1
                elif acl_part == parts[i]:
                    continue
                elif is_prefix and i == len(acl_parts) - 1 and parts[i].startswith(acl_part):
                    continue
                else:
                    break
            else:
                candidates.append((first, is_prefix, wildcards, current, caps))
        if not candidates:
            return None
        # highest priority wins: later glob, non-prefix, fewer "+", longer, lexically larger
        best = max(candidates, key=lambda c: (c[0], not c[1], -c[2], len(c[3]), c[3]))
        return best[4]

    def allows(self, path: str, operation: str, *, sudo: bool = False) -> bool:
        """Whether ``operation`` (read/list/create/update/delete/patch) is allowed on ``path``."""
        if self.root:
            return True
        caps = self.capabilities(path, listing=operation == "list")
        if "deny" in caps:
            return False
        if sudo and "sudo" not in caps:
            return False
        return operation in caps
