"""Cluster policy (entry point ``airflow.policy: pipeshield_verify``) that checks the signature of the model
every deploy task of an existing DAG receives, without editing the DAG.

A task is a deploy task when it carries the marker ``params={"pipeshield_stage": "deploy"}`` (set on the
task, not inherited from the DAG), when its operator class is listed in
``PIPESHIELD_VERIFY_DEPLOY_OPERATORS``, or when its task id names the deploy stage (the word ``deploy``)
in a DAG tagged with one of ``PIPESHIELD_VERIFY_DEPLOY_TAGS``. The policy adds ``pipeshield_verify__<task>``
(a :class:`~pipeshield.operators.verify_inputs.VerifyModelInputsOperator`) in the task's group, wired
``<task's upstreams> >> verify >> task``; existing edges are kept.

The verify task checks what the deploy task is handed: every XCom its arguments take from upstream
tasks (``deploy(fetch())``) must be a local model directory whose pipeshield signature verifies with the
trusted keys, else it fails and the deploy task never runs. The deploy task itself verifies them again as
the last step before it runs (:class:`~pipeshield.operators.verify_inputs.RecheckVerifiedInputs`) and refuses
a model whose root digest differs from the one the verify task recorded. A task selected by operator class or by
DAG tag that takes no XCom input is refused (there is nothing the policy could check); a task selected
only by the marker, which the stage policy also uses for routing, is then left alone. A task whose inputs
all come from :class:`~pipeshield.operators.verify_model.VerifyModelOperator` is already verified.

Like the gate policy it is deterministic and idempotent (it runs on the dag-processor and on every worker).
"""

from __future__ import annotations

import re
from typing import Any

import pluggy

from pipeshield.config import Settings

hookimpl = pluggy.HookimplMarker("airflow.policy")

VERIFY_PREFIX = "pipeshield_verify__"
STAGE_PARAM = "pipeshield_stage"
_DEPLOY_WORD = re.compile(r"(^|[^a-z0-9])deploy([^a-z0-9]|$)")


@hookimpl
def dag_policy(dag: Any) -> None:
    """Insert a model check upstream of each deploy task that has none yet."""
    settings = Settings.load()
    tagged = bool(set(dag.tags or ()) & set(settings.verify_deploy_tags))
    for task in sorted(dag.tasks, key=lambda t: t.task_id):
        if _listed(task, settings.verify_deploy_operators) or (tagged and _names_deploy(task)):
            _insert_verify(dag, task, required=True)
        elif is_deploy_task(task):
            _insert_verify(dag, task, required=False)  # the marker also routes tasks that take no model


def is_deploy_task(task: Any, deploy_operators: tuple[str, ...] = ()) -> bool:
    """True for a task marked ``pipeshield_stage="deploy"`` in its own params, or of a listed operator class."""
    if _inserted(task):
        return False
    if _listed(task, deploy_operators):
        return True
    params = getattr(task, "params", None)
    if params is None or STAGE_PARAM not in params:
        return False
    return params.get_param(STAGE_PARAM).source == "task" and params[STAGE_PARAM] == "deploy"


def _listed(task: Any, deploy_operators: tuple[str, ...]) -> bool:
    cls = type(task)
    names = (cls.__name__, f"{cls.__module__}.{cls.__qualname__}")
    return not _inserted(task) and any(name in deploy_operators for name in names)


def _inserted(task: Any) -> bool:
    return task.task_id.rsplit(".", 1)[-1].startswith(VERIFY_PREFIX)


def _names_deploy(task: Any) -> bool:
    return not _inserted(task) and bool(_DEPLOY_WORD.search(task.label.lower()))


def verify_task_id(task: Any) -> str:
    """The full task id of the model check in front of ``task`` (same task group)."""
    group = task.task_group
    verify = f"{VERIFY_PREFIX}{task.label}"
    return verify if group is None or group.is_root else f"{group.group_id}.{verify}"


def _insert_verify(dag: Any, task: Any, *, required: bool) -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.sdk.definitions.xcom_arg import XComArg

    from pipeshield.operators.verify_inputs import RecheckVerifiedInputs, VerifyModelInputsOperator
    from pipeshield.operators.verify_model import VerifyModelOperator

    if verify_task_id(task) in dag.task_dict:
        return
    references = sorted({(op.task_id, key): op for op, key in XComArg.iter_xcom_references(task)}.items())
    if not references and not required:
        return
    if not references:
        raise AirflowClusterPolicyViolation(
            f"{dag.dag_id}.{task.task_id}: a deploy task must take its model from an upstream task's output "
            "(e.g. deploy(fetch())) for pipeshield to verify it; it takes no XCom input"
        )
    if all(isinstance(op, (VerifyModelOperator, VerifyModelInputsOperator)) for _, op in references):
        return  # deploys only what a pipeshield verify task handed over
    group = task.task_group
    verify = VerifyModelInputsOperator(
        task_id=f"{VERIFY_PREFIX}{task.label}",
        dag=dag,
        task_group=None if group is None or group.is_root else group,
        inputs=[list(ref) for ref, _ in references],
        doc_md=f"Model signature check inserted by pipeshield in front of `{task.task_id}`.",
    )
    for upstream in sorted(task.upstream_list, key=lambda t: t.task_id):
        upstream >> verify
    verify >> task
    RecheckVerifiedInputs.attach(task, verify.task_id)
