"""Airflow cluster policy (``airflow.policy`` entry point ``pipeshield_stages``): per-stage routing.

For every task with a stage (``params={"pipeshield_stage": ...}``, else the operator's ``stage``
attribute, else the manifest's ``operators`` list) the policy sets

* ``queue = <stage queue>`` (Celery/Edge: one worker pool, one Vault identity per stage);
* ``executor_config["pod_override"]`` with ``serviceAccountName`` = the stage's ServiceAccount and
  the environment that makes pipeshield log in with the stage's Vault Kubernetes-auth role;
* a success/failure/retry/skip callback that revokes the stage's Vault token when the task ends.

A task naming a stage the manifest does not define is refused with ``AirflowClusterPolicyViolation``.
"""

from __future__ import annotations

import copy
from typing import Any

import pluggy

from pipeshield.errors import PipeshieldError
from pipeshield.stages import MARKER, StageManifest, configured_manifest, pod_env, resolve_stage, revoke_stage_sessions

_CALLBACKS = ("on_success_callback", "on_failure_callback", "on_retry_callback", "on_skipped_callback")
_CONTAINER = "base"  # the container name the Kubernetes executor expects


def task_stage(task: Any, manifest: StageManifest) -> tuple[str | None, str]:
    """``(stage, how)`` for a task (see :func:`pipeshield.stages.resolve_stage`)."""
    params = getattr(task, "params", None) or {}
    marker = {MARKER: params[MARKER]} if MARKER in params else {}
    class_names = [cls.__name__ for cls in type(task).__mro__]
    return resolve_stage(manifest, marker, getattr(task, "stage", None), class_names)


def revoke_at_task_end(context: Any = None) -> None:
    """Task callback: revoke every stage token this task process holds."""
    revoke_stage_sessions()


# Airflow loads this module while it initialises: importing airflow here at module level could register a
# half-imported module, so the marker comes from pluggy and Airflow's exception is imported when needed.
hookimpl = pluggy.HookimplMarker("airflow.policy")


@hookimpl
def task_policy(task: Any) -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation

    try:
        manifest = configured_manifest()
    except PipeshieldError as exc:
        raise AirflowClusterPolicyViolation(f"pipeshield stage manifest: {exc}") from None
    stage_name, how = task_stage(task, manifest)
    if stage_name is None:
        return
    if stage_name not in manifest.stages:
        source = "params['pipeshield_stage']" if how == "marker" else f"{type(task).__name__}.stage"
        raise AirflowClusterPolicyViolation(
            f"task {task.dag_id}.{task.task_id}: {source} names unknown pipeshield stage {stage_name!r}; "
            f"{manifest.source} defines: {', '.join(sorted(manifest.stages))}"
        )
    stage = manifest.stages[stage_name]
    task.queue = stage.queue
    if stage.kubernetes is not None:
        config = dict(task.executor_config or {})
        config["pod_override"] = _pod_override(config.get("pod_override"), stage.kubernetes.service_account,
                                               stage_name, pod_env(stage, manifest))
        task.executor_config = config
    for kind in _CALLBACKS:
        callbacks = getattr(task, kind) or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if revoke_at_task_end not in callbacks:
            setattr(task, kind, [*callbacks, revoke_at_task_end])


def _pod_override(existing: Any, service_account: str, stage: str, env: dict[str, str]) -> Any:
    """The task's pod override with the stage's ServiceAccount and Vault settings forced in."""
    from kubernetes.client import models as k8s

    # a copy: DAG authors often share one V1Pod between tasks of different stages
    pod = copy.deepcopy(existing) if isinstance(existing, k8s.V1Pod) else k8s.V1Pod()
    pod.metadata = pod.metadata or k8s.V1ObjectMeta()
    pod.metadata.labels = {**(pod.metadata.labels or {}), "pipeshield.io/stage": stage}
    pod.spec = pod.spec or k8s.V1PodSpec(containers=[])
    pod.spec.service_account_name = service_account
    pod.spec.automount_service_account_token = True
    containers = pod.spec.containers or []
    base = next((c for c in containers if c.name == _CONTAINER), None)
    if base is None:
        base = k8s.V1Container(name=_CONTAINER)
        containers.append(base)
    pod.spec.containers = containers
    kept = [e for e in (base.env or []) if e.name not in env]
    base.env = kept + [k8s.V1EnvVar(name=name, value=value) for name, value in env.items()]
    return pod
