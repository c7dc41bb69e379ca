"""Least privilege per pipeline stage, generated from one manifest.

>>> from pipeshield.stages import load_manifest, render_vault, helm_values, audit
>>> manifest = load_manifest()                 # $PIPESHIELD_STAGE_MANIFEST or the shipped default
>>> manifest.stage("train").allows("sign", "pipeshield-signing")
False

At run time a process acts as one stage: :func:`stage_settings` selects the stage's own Vault
credentials and :func:`open_stage_provider` logs in once per stage, renews and, on
:func:`revoke_stage_sessions`, revokes the token.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pipeshield.stages._audit import OPERATOR_NEEDS, Finding, TaskRecord, audit
from pipeshield.stages._credentials import env_prefix, stage_settings
from pipeshield.stages._k8s import helm_values, pod_env
from pipeshield.stages._manifest import (
    DEFAULT_STAGES,
    AppRoleAuth,
    KubernetesAuth,
    Stage,
    StageManifest,
    VaultLayout,
    default_manifest_path,
    load_manifest,
    parse_manifest,
)
from pipeshield.stages._routing import MARKER, resolve_stage
from pipeshield.stages._schema import CAPABILITIES, KV_OPERATIONS, OPERATIONS, SCHEMA
from pipeshield.stages._session import (
    StageIdentity,
    StageKeyProvider,
    open_stage_provider,
    revoke_stage_sessions,
)
from pipeshield.stages._vault import approle_roles, kubernetes_roles, policies, policy_rules, render_vault, transit_path

#: Environment variable naming the manifest a deployment uses.
MANIFEST_ENV = "PIPESHIELD_STAGE_MANIFEST"

__all__ = [
    "CAPABILITIES", "DEFAULT_STAGES", "KV_OPERATIONS", "MANIFEST_ENV", "MARKER", "OPERATIONS", "OPERATOR_NEEDS",
    "SCHEMA", "AppRoleAuth", "Finding", "KubernetesAuth", "Stage", "StageIdentity", "StageKeyProvider",
    "StageManifest", "TaskRecord", "VaultLayout", "approle_roles", "audit", "configured_manifest",
    "default_manifest_path", "env_prefix", "helm_values", "kubernetes_roles", "load_manifest",
    "open_stage_provider", "parse_manifest", "pod_env", "policies", "policy_rules", "render_vault",
    "resolve_stage", "revoke_stage_sessions", "stage_settings", "transit_path",
]


def configured_manifest() -> StageManifest:
    """The deployment's manifest: ``$PIPESHIELD_STAGE_MANIFEST`` or the shipped default (cached per file state)."""
    path = Path(os.environ.get(MANIFEST_ENV) or default_manifest_path())
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    return _cached_manifest(str(path), stamp)


@lru_cache(maxsize=8)
def _cached_manifest(path: str, stamp: int) -> StageManifest:
    return load_manifest(path)
