"""Airflow side of :mod:`pipeshield.selectors`: the facts a selector looks at, read off a DAG or a task."""

from __future__ import annotations

import inspect
from typing import Any

from pipeshield.selectors import DagFacts, TaskFacts


def dag_facts(dag: Any) -> DagFacts:
    """The selector facts of an Airflow DAG (its bundle is known while a ``DagBag`` is bagging it)."""
    return DagFacts(
        dag_id=dag.dag_id,
        tags=frozenset(str(tag) for tag in (dag.tags or ())),
        fileloc=getattr(dag, "fileloc", None),
        bundle=_bundle_being_bagged(),
    )


def task_facts(task: Any, dag: Any | None = None) -> TaskFacts:
    """The selector facts of a task: its DAG's facts, its id and its operator class's import paths."""
    return TaskFacts(
        dag=dag_facts(dag if dag is not None else task.dag),
        task_id=task.task_id,
        operator_paths=operator_paths(type(task)),
    )


def operator_paths(cls: type) -> tuple[str, ...]:
    """``module.QualName`` of ``cls`` and of each of its bases, most derived first."""
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__ if c is not object)


def _bundle_being_bagged() -> str | None:
    """The ``bundle_name`` of the ``DagBag`` whose ``bag_dag`` is on the stack (policies run inside it)."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if frame.f_code.co_name == "bag_dag":
                bag = frame.f_locals.get("self")
                name = getattr(bag, "bundle_name", None)
                return name if isinstance(name, str) else None
            frame = frame.f_back
        return None
    finally:
        del frame
