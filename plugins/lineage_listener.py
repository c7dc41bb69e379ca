"""Airflow listener: lineage attributes on every task's ``worker.<task>`` span, no DAG edits needed.

Runs in the task-runner process (``RuntimeTaskInstance``), where Airflow's ``worker.<task>`` span is
current: it adds ``pipeshield.stage``, the dag/task/run ids, inlets and outlets to that span, attaches
the lineage ledger to Airflow's tracer provider, and records the final state as an event. Calls from
the API server or scheduler (ORM task instances, no task object) are ignored. Listeners can observe
but never block a task; every hook here swallows and logs its own errors.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.listeners import hookimpl
from opentelemetry import trace

from pipeshield.lineage import attributes as A

log = logging.getLogger(__name__)

STAGE_PARAM = "pipeshield_stage"
STAGES = ("validate", "train", "register", "deploy", "serve")
_STAGE_WORDS = {"gate": "validate", "check": "validate", "fit": "train", "publish": "register", "predict": "serve"}
_MAX_ASSETS = 50


def stage_of(task: Any) -> str:
    """The task's pipeline stage: its ``stage`` attribute or ``params["pipeshield_stage"]`` marker (the
    gate policy's), ``PIPESHIELD_STAGE``, or a stage word of its task id."""
    explicit = getattr(task, "stage", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    try:
        marker = (getattr(task, "params", None) or {}).get(STAGE_PARAM)
    except Exception:  # noqa: BLE001 - an unresolvable param is no stage
        marker = None
    if isinstance(marker, str) and marker:
        return marker
    if os.environ.get("PIPESHIELD_STAGE"):
        return os.environ["PIPESHIELD_STAGE"]
    words = str(getattr(task, "task_id", "")).lower().replace("-", "_").split("_")
    for word in words:
        if word in STAGES:
            return word
        if word in _STAGE_WORDS:
            return _STAGE_WORDS[word]
    return "other"


def _uris(assets: Any) -> list[str]:
    return [str(getattr(a, "uri", None) or a)[:500] for a in list(assets or ())[:_MAX_ASSETS]]


def task_attributes(task_instance: Any) -> dict[str, Any]:
    """The lineage attributes for one runtime task instance."""
    task = task_instance.task
    attributes: dict[str, Any] = {
        A.STAGE: stage_of(task),
        A.AIRFLOW_DAG_ID: task_instance.dag_id,
        A.AIRFLOW_TASK_ID: task_instance.task_id,
        A.AIRFLOW_RUN_ID: task_instance.run_id,
        A.AIRFLOW_TRY_NUMBER: int(task_instance.try_number or 0),
    }
    if inlets := _uris(getattr(task, "inlets", None)):
        attributes[A.INLETS] = inlets
    if outlets := _uris(getattr(task, "outlets", None)):
        attributes[A.OUTLETS] = outlets
    return attributes


def _runtime(task_instance: Any) -> bool:
    return hasattr(task_instance, "get_template_context") and getattr(task_instance, "task", None) is not None


def _attach_ledger() -> None:
    from pipeshield.lineage import install_ledger

    install_ledger(service_name=os.environ.get("OTEL_SERVICE_NAME", "airflow"))  # PIPESHIELD_LEDGER_URL=off: none


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    if not _runtime(task_instance):
        return
    try:
        _attach_ledger()
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(task_attributes(task_instance))
    except Exception:  # noqa: BLE001 - never disturb the task
        log.exception("pipeshield lineage listener failed on task start")


def _finished(task_instance: Any, state: str) -> None:
    if not _runtime(task_instance):
        return
    try:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(A.TASK_STATE, state)
            span.add_event(A.EVENT_TASK_FINISHED, {A.TASK_STATE: state})
    except Exception:  # noqa: BLE001
        log.exception("pipeshield lineage listener failed on task end")


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _finished(task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _finished(task_instance, "failed")


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _finished(task_instance, "skipped")
