"""Vault ACL policies (HCL) and AppRole / Kubernetes-auth role definitions generated from a manifest."""

from __future__ import annotations

import json
from typing import Any

from pipeshield.stages._manifest import Stage, StageManifest, VaultLayout

# Exact paths per Transit operation, as VaultTransitKeyProvider calls them (hvac adds no hash-algorithm
# suffix). ``encrypt`` also reads the key first: the provider refuses to let Vault upsert a missing key.
_TRANSIT_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "datakey": (("datakey/plaintext/{key}", "update"),),
    "decrypt": (("decrypt/{key}", "update"),),
    "encrypt": (("encrypt/{key}", "update"), ("keys/{key}", "read")),
    "rewrap": (("rewrap/{key}", "update"),),
    "hmac": (("hmac/{key}", "update"),),
    "sign": (("sign/{key}", "update"),),
    "verify": (("verify/{key}", "update"),),
    "read": (("keys/{key}", "read"),),
}
# KV v2: data lives under <mount>/data/, listings under <mount>/metadata/.
_KV_PATHS = {
    "read": ("data", ("read",)),
    "write": ("data", ("create", "update")),
    "delete": ("data", ("delete",)),
    "list": ("metadata", ("list",)),
}
_CAPABILITY_ORDER = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny")


def transit_path(layout: VaultLayout, operation: str, key: str) -> str:
    """The Vault request path of Transit ``operation`` on ``key``."""
    template, _ = _TRANSIT_PATHS[operation][0]
    return f"{layout.transit_mount}/{template.format(key=key)}"


def policy_rules(stage: Stage, layout: VaultLayout) -> dict[str, list[str]]:
    """ACL path → capabilities (sorted as Vault prints them) for one stage."""
    rules: dict[str, set[str]] = {}
    for key, operations in stage.transit.items():
        for operation in operations:
            for template, capability in _TRANSIT_PATHS[operation]:
                rules.setdefault(f"{layout.transit_mount}/{template.format(key=key)}", set()).add(capability)
    for path, operations in stage.kv.items():
        for operation in operations:
            area, capabilities = _KV_PATHS[operation]
            rules.setdefault(f"{layout.kv_mount}/{area}/{path}", set()).update(capabilities)
    for path, capabilities in stage.vault_paths.items():
        rules.setdefault(path.lstrip("/"), set()).update(capabilities)
    return {path: [c for c in _CAPABILITY_ORDER if c in caps] for path, caps in sorted(rules.items())}


def policy_hcl(stage: Stage, manifest: StageManifest) -> str:
    """The stage's ACL policy in HCL."""
    lines = [f'# pipeshield stage "{stage.name}": generated from the stage manifest; do not edit by hand.']
    for path, capabilities in policy_rules(stage, manifest.vault).items():
        caps = ", ".join(json.dumps(c) for c in capabilities)
        lines += ["", f"path {json.dumps(path)} {{", f"  capabilities = [{caps}]", "}"]
    return "\n".join(lines) + "\n"


def policies(manifest: StageManifest) -> dict[str, str]:
    """Policy name → HCL for every stage."""
    return {stage.policy: policy_hcl(stage, manifest) for stage in manifest.stages.values()}


def _token_fields(stage: Stage) -> dict[str, Any]:
    # Vault role fields named token_*: settings of the tokens the role issues, not secrets
    return {  # nosec B105
        "token_policies": [stage.policy],
        "token_ttl": stage.token_ttl,
        "token_max_ttl": stage.token_max_ttl,
        "token_type": "service",
        "token_no_default_policy": False,
    }


def approle_roles(manifest: StageManifest) -> dict[str, dict[str, Any]]:
    """AppRole role name → role definition (``auth/<approle mount>/role/<name>`` fields)."""
    roles: dict[str, dict[str, Any]] = {}
    for stage in manifest.stages.values():
        if stage.approle is None:
            continue
        # AppRole settings named *secret_id*: how secret ids are issued, not secrets
        role = {"bind_secret_id": True, "secret_id_ttl": stage.approle.secret_id_ttl,  # nosec B105
                "secret_id_num_uses": stage.approle.secret_id_num_uses, **_token_fields(stage)}
        if stage.approle.token_bound_cidrs:
            role["token_bound_cidrs"] = list(stage.approle.token_bound_cidrs)
        if stage.approle.secret_id_bound_cidrs:
            role["secret_id_bound_cidrs"] = list(stage.approle.secret_id_bound_cidrs)
        roles[stage.approle.role] = role
    return roles


def kubernetes_roles(manifest: StageManifest) -> dict[str, dict[str, Any]]:
    """Kubernetes-auth role name → role definition binding the stage's ServiceAccount."""
    roles: dict[str, dict[str, Any]] = {}
    for stage in manifest.stages.values():
        if stage.kubernetes is None:
            continue
        role = {"bound_service_account_names": [stage.kubernetes.service_account],
                "bound_service_account_namespaces": [stage.kubernetes.namespace], **_token_fields(stage)}
        if stage.kubernetes.audience:
            role["audience"] = stage.kubernetes.audience
        roles[stage.kubernetes.role] = role
    return roles


def render_vault(manifest: StageManifest) -> dict[str, str]:
    """Every generated Vault file: ``policies/<name>.hcl``, ``approle/<role>.json``, ``kubernetes/<role>.json``."""
    files = {f"policies/{name}.hcl": text for name, text in policies(manifest).items()}
    for area, roles in (("approle", approle_roles(manifest)), ("kubernetes", kubernetes_roles(manifest))):
        for name, role in roles.items():
            files[f"{area}/{name}.json"] = json.dumps(role, indent=2, sort_keys=True) + "\n"
    return files

