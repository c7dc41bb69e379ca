"""Cluster policy (entry point ``airflow.policy: pipeshield_gate``) that puts a data gate in front of
every training task of existing DAGs, without editing them.

A task is a training task when it carries the marker ``params={"pipeshield_stage": "train"}`` (set on
the task, not inherited from the DAG), when its operator class is listed in
``PIPESHIELD_GATE_TRAIN_OPERATORS``, or when it declares inlets in a DAG tagged with one of
``PIPESHIELD_GATE_TRAIN_TAGS`` (for DAGs nobody may edit). The policy adds ``pipeshield_gate__<task>`` (a
:class:`~pipeshield.operators.data_gate.DataGateOperator`) in the task's group, wired
``<task's upstreams> >> gate >> task``; existing edges are kept. A training task that already has a
``DataGateOperator`` directly upstream (an explicitly secured DAG) gets no second gate.

The gate checks the training task's single inlet, an ``Asset`` (``file://`` URI or local path) whose
``extra["pipeshield"]`` may set ``label_column``, ``suite``, ``reference``, ``on_flag``, ``clean`` and
``quarantine``. ``on_flag="quarantine"`` needs ``clean`` (the file the training task reads); without
it the gate fails instead, so flagged rows never reach a trainer that reads the original batch.

The policy is deterministic and idempotent: it runs on the dag-processor and again on every worker,
so its output depends only on the DAG and on pipeshield's settings (keep those equal everywhere).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pluggy

from pipeshield.config import Settings

# Airflow imports are deferred: Airflow loads this module while it initialises, so a top-level
# ``import airflow...`` here could register a half-imported module without its hooks.
hookimpl = pluggy.HookimplMarker("airflow.policy")

GATE_PREFIX = "pipeshield_gate__"
STAGE_PARAM = "pipeshield_stage"
_OPTIONS = ("label_column", "suite", "reference", "on_flag", "clean", "quarantine")

log = logging.getLogger(__name__)


@hookimpl
def dag_policy(dag: Any) -> None:
    """Insert a gate upstream of each training task that has none yet."""
    settings = Settings.load()
    tagged = bool(set(dag.tags or ()) & set(settings.gate_train_tags))
    for task in sorted(dag.tasks, key=lambda t: t.task_id):
        if is_training_task(task, settings.gate_train_operators) or (tagged and _gateable(task) and task.inlets):
            _insert_gate(dag, task, settings)


def is_training_task(task: Any, train_operators: tuple[str, ...] = ()) -> bool:
    """True for a task marked ``pipeshield_stage="train"`` in its own params, or of a listed operator class."""
    if not _gateable(task):
        return False
    cls = type(task)
    if cls.__name__ in train_operators or f"{cls.__module__}.{cls.__qualname__}" in train_operators:
        return True
    params = getattr(task, "params", None)
    if params is None or STAGE_PARAM not in params:
        return False
    return params.get_param(STAGE_PARAM).source == "task" and params[STAGE_PARAM] == "train"


def _gateable(task: Any) -> bool:
    return not task.task_id.rsplit(".", 1)[-1].startswith(GATE_PREFIX)


def gate_task_id(task: Any) -> str:
    """The full task id of the gate in front of ``task`` (same task group)."""
    group = task.task_group
    gate = f"{GATE_PREFIX}{task.label}"
    return gate if group is None or group.is_root else f"{group.group_id}.{gate}"


def _insert_gate(dag: Any, task: Any, settings: Settings) -> None:
    from pipeshield.operators.data_gate import DataGateOperator

    if gate_task_id(task) in dag.task_dict or any(isinstance(up, DataGateOperator) for up in task.upstream_list):
        return  # gated already (by this policy, or explicitly by the DAG's author)
    uri, options = _dataset_of(dag, task)
    on_flag = options.get("on_flag") or settings.gate_on_flag
    if on_flag == "quarantine" and not options.get("clean"):
        log.warning("%s.%s: on_flag=quarantine needs extra['pipeshield']['clean'] (the file training reads); "
                    "the gate will fail flagged batches instead", dag.dag_id, task.task_id)
        on_flag = "fail"
    group = task.task_group
    gate = DataGateOperator(
        task_id=f"{GATE_PREFIX}{task.label}",
        dag=dag,
        task_group=None if group is None or group.is_root else group,
        data=uri,
        label_column=options.get("label_column") or settings.gate_label_column,
        suite=options.get("suite"),
        reference=options.get("reference"),
        on_flag=on_flag,
        clean_path=options.get("clean"),
        quarantine_path=options.get("quarantine"),
        doc_md=f"Data gate inserted by pipeshield in front of `{task.task_id}`.",
    )
    for upstream in sorted(task.upstream_list, key=lambda t: t.task_id):
        upstream >> gate
    gate >> task


def _dataset_of(dag: Any, task: Any) -> tuple[str, Mapping[str, Any]]:
    """The training task's single dataset inlet: its URI and its ``extra["pipeshield"]`` options."""
    from airflow.exceptions import AirflowClusterPolicyViolation

    inlets = list(task.inlets or [])
    where = f"{dag.dag_id}.{task.task_id}"
    if len(inlets) != 1:
        raise AirflowClusterPolicyViolation(
            f"{where}: a training task must declare exactly one dataset inlet (an Asset with a file:// URI) "
            f"for the pipeshield data gate to check; found {len(inlets)}"
        )
    inlet = inlets[0]
    uri = inlet if isinstance(inlet, str) else getattr(inlet, "uri", None)
    if not uri:
        raise AirflowClusterPolicyViolation(f"{where}: inlet {inlet!r} has no URI for the data gate to read")
    extra = {} if isinstance(inlet, str) else dict(getattr(inlet, "extra", None) or {})
    options = extra.get("pipeshield") or {}
    unknown = sorted(set(options) - set(_OPTIONS)) if isinstance(options, Mapping) else [options]
    if unknown:
        raise AirflowClusterPolicyViolation(
            f"{where}: extra['pipeshield'] must be a mapping with keys among {', '.join(_OPTIONS)}; got {unknown}"
        )
    if options.get("on_flag") not in (None, "fail", "quarantine", "warn"):
        raise AirflowClusterPolicyViolation(
            f"{where}: extra['pipeshield']['on_flag'] must be fail, quarantine or warn; got {options['on_flag']!r}"
        )
    return uri, options
