"""Kubernetes side of a manifest: per-stage ServiceAccounts, their Vault role bindings, and pod settings.

``helm_values`` gives the ``stages`` block consumed by the ``helm/pipeshield`` chart; ``pod_env`` is
what a stage's pod needs so that pipeshield logs in to Vault with the pod's service-account JWT.
"""

from __future__ import annotations

from typing import Any

from pipeshield.stages._credentials import env_prefix
from pipeshield.stages._manifest import Stage, StageManifest


def pod_env(stage: Stage, manifest: StageManifest) -> dict[str, str]:
    """Environment of a stage's pod: act as the stage, Kubernetes auth with the stage's Vault role."""
    if stage.kubernetes is None:
        raise ValueError(f"stage {stage.name!r} has no Kubernetes service account in the manifest")
    prefix = env_prefix(stage.name)
    return {
        "PIPESHIELD_STAGE": stage.name,
        prefix + "AUTH": "kubernetes",
        prefix + "ROLE": stage.kubernetes.role,
        prefix + "AUTH_MOUNT": manifest.vault.kubernetes_mount,
    }


def helm_values(manifest: StageManifest) -> dict[str, Any]:
    """``{"stages": {<stage>: {...}}}`` for every stage with Kubernetes auth (see docs/stages.md)."""
    stages: dict[str, Any] = {}
    for stage in manifest.stages.values():
        if stage.kubernetes is None:
            continue
        k8s = stage.kubernetes
        stages[stage.name] = {
            "queue": stage.queue,
            "serviceAccount": {
                "create": True,
                "name": k8s.service_account,
                "namespace": k8s.namespace,
                "automountServiceAccountToken": True,
                "annotations": {"pipeshield.io/stage": stage.name, "pipeshield.io/vault-role": k8s.role},
            },
            "vault": {
                "authMount": manifest.vault.kubernetes_mount,
                "role": k8s.role,
                "policies": [stage.policy],
                "boundServiceAccountNames": [k8s.service_account],
                "boundServiceAccountNamespaces": [k8s.namespace],
                "tokenTTL": stage.token_ttl,
                "tokenMaxTTL": stage.token_max_ttl,
                **({"audience": k8s.audience} if k8s.audience else {}),
            },
            "env": pod_env(stage, manifest),
        }
    return {"stages": stages}
