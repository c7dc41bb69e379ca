"""Audit a manifest (and the tasks of a DAG folder) for stages broader than their operators need."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping

from pipeshield.stages._manifest import Stage, StageManifest

#: Transit operations each pipeshield component performs. An operator class may declare its own with
#: a ``pipeshield_operations`` attribute; a stage running anything else is not checked for breadth.
OPERATOR_NEEDS: Mapping[str, frozenset[str]] = {
    "EncryptOperator": frozenset({"datakey"}),
    "DecryptOperator": frozenset({"decrypt"}),
    "TokenizeColumnsOperator": frozenset({"hmac", "encrypt"}),
    "DataGateOperator": frozenset({"decrypt"}),
    "ValidateDataOperator": frozenset({"decrypt"}),
    "PoisoningCheckOperator": frozenset({"decrypt"}),
    "register_signed_model": frozenset({"sign", "read"}),
    "VerifyModelOperator": frozenset({"verify", "read", "decrypt"}),
    "pipeshield_serve": frozenset({"verify", "read"}),
}


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """What the audit needs to know about one task of a DAG."""

    dag_id: str
    task_id: str
    operator: str
    stage: str | None
    how: str
    needs: frozenset[str] | None = None


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"[{self.kind}] {self.subject}{where}: {self.message}"


def _is_wildcard(text: str) -> bool:
    return "*" in text or "+" in text.split("/")


def audit(manifest: StageManifest, tasks: Iterable[TaskRecord] = ()) -> list[Finding]:
    """Every finding, manifest first, then tasks; empty when the manifest and the tasks are least-privilege."""
    tasks = list(tasks)
    findings: list[Finding] = []
    for stage in manifest.stages.values():
        findings += _stage_findings(stage, manifest)
    findings += _shared_identities(manifest)
    findings += _task_findings(manifest, tasks)
    findings += _breadth(manifest, tasks)
    return findings


def _stage_findings(stage: Stage, manifest: StageManifest) -> list[Finding]:
    out: list[Finding] = []
    subject = f"stage {stage.name}"
    for field, grants in (("transit", stage.transit), ("kv", stage.kv), ("vault_paths", stage.vault_paths)):
        for name, operations in grants.items():
            line = manifest.line_of("stages", stage.name, field, name)
            if _is_wildcard(name):
                out.append(Finding("wildcard", subject, f"{field} entry {name!r} uses a wildcard; name exact "
                                   "keys and paths", line))
            if "sudo" in operations:
                out.append(Finding("sudo", subject, f"vault_paths entry {name!r} grants sudo", line))
    for resource, permission in stage.mlflow.items():
        if permission == "MANAGE":
            out.append(Finding("mlflow-manage", subject, f"MANAGE on MLflow {resource}s lets the stage change "
                               "permissions; EDIT is enough to write", manifest.line_of("stages", stage.name, "mlflow",
                                                                                        resource)))
    operations = stage.operations()
    if "sign" in operations and "decrypt" in operations:
        out.append(Finding("sign-and-decrypt", subject, "may both sign and decrypt: a stage that reads data "
                           "must not also vouch for models", manifest.line_of("stages", stage.name, "transit")))
    return out


def _shared_identities(manifest: StageManifest) -> list[Finding]:
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    for stage in manifest.stages.values():
        if stage.approle is not None:
            holders[("AppRole role", stage.approle.role)].append(stage.name)
        if stage.kubernetes is not None:
            holders[("Kubernetes-auth role", stage.kubernetes.role)].append(stage.name)
            sa = f"{stage.kubernetes.namespace}/{stage.kubernetes.service_account}"
            holders[("ServiceAccount", sa)].append(stage.name)
        holders[("queue", stage.queue)].append(stage.name)
    return [
        Finding("shared-identity", f"{kind} {name}", f"shared by stages {', '.join(stages)}",
                manifest.line_of("stages", stages[1]))
        for (kind, name), stages in sorted(holders.items()) if len(stages) > 1
    ]


def _task_findings(manifest: StageManifest, tasks: list[TaskRecord]) -> list[Finding]:
    out: list[Finding] = []
    for task in tasks:
        subject = f"task {task.dag_id}.{task.task_id}"
        if task.stage is None:
            out.append(Finding("unstaged-task", subject, f"{task.operator} has no stage: it would run with the "
                               "worker's shared identity; add params={'pipeshield_stage': ...}"))
        elif task.stage not in manifest.stages:
            out.append(Finding("unknown-stage", subject, f"names stage {task.stage!r}, which the manifest "
                               f"does not define ({', '.join(sorted(manifest.stages))})"))
    return out


def _breadth(manifest: StageManifest, tasks: list[TaskRecord]) -> list[Finding]:
    """Operations a stage grants that none of its operators (declared or seen in the DAGs) perform."""
    seen: dict[str, list[TaskRecord]] = defaultdict(list)
    for task in tasks:
        if task.stage in manifest.stages:
            seen[task.stage].append(task)
    out: list[Finding] = []
    for stage in manifest.stages.values():
        needs: set[str] = set()
        known = bool(stage.operators) or bool(seen[stage.name])
        for component in stage.operators:
            if component not in OPERATOR_NEEDS:
                known = False
                break
            needs |= OPERATOR_NEEDS[component]
        for task in seen[stage.name]:
            task_needs = task.needs if task.needs is not None else OPERATOR_NEEDS.get(task.operator)
            if task_needs is None:
                known = False
                break
            needs |= task_needs
        extra = sorted(stage.operations() - needs)
        if known and extra:
            users = sorted(set(stage.operators) | {t.operator for t in seen[stage.name]})
            out.append(Finding("broader-than-needed", f"stage {stage.name}",
                               f"grants {', '.join(extra)} but its operators ({', '.join(users)}) never use it",
                               manifest.line_of("stages", stage.name, "transit")))
    return out
