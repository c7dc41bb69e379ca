"""Which DAGs and tasks a pipeshield rule applies to: the one selector vocabulary shared by the stage
manifest (stage grants and assignments), the gate and verify policies, per-DAG settings and ``doctor``.

A selector is written as a mapping (in the stage manifest's YAML or a ``pipeshield.toml`` table)::

    dags:                      # all given fields must match; within a field, any entry may match
      folders: [/opt/airflow/dags/ml]   # the DAG file lies under one of these directories
      bundles: [ml-platform]            # the DAG came from one of these DAG bundles
      dag_ids: ["fraud_*"]              # fnmatch patterns on the DAG id
      tags: [fraud]                     # the DAG carries one of these tags
    task_ids: ["train*"]                # fnmatch patterns on the task id (group prefix included)
    operators: [airflow.providers.standard.operators.python.PythonOperator]  # full import paths

A selector with no field matches nothing (deny by default). ``dag_ids`` and ``tags`` are written by the
DAG's author; only ``folders`` and ``bundles`` are set by whoever deploys the DAG files, so a grant of a
privileged stage should name one of those (see :meth:`DagSelector.author_controlled`). Operators match by
full import path of the class or one of its bases, never by bare class name.

This module is pure: the Airflow adapters turn a DAG or task into :class:`DagFacts` / :class:`TaskFacts`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Mapping
from typing import Any

from pipeshield.errors import ConfigError

_DAG_FIELDS = ("folders", "bundles", "dag_ids", "tags")
_TASK_FIELDS = ("dags", "task_ids", "operators")


@dataclasses.dataclass(frozen=True)
class DagFacts:
    """What a selector may look at in a DAG."""

    dag_id: str
    tags: frozenset[str] = frozenset()
    fileloc: str | None = None
    bundle: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskFacts:
    """What a selector may look at in a task: its DAG, its id and its operator's class path and bases."""

    dag: DagFacts
    task_id: str
    operator_paths: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class DagSelector:
    """DAGs chosen by where their files live, which bundle they came from, their id or their tags."""

    folders: tuple[str, ...] = ()
    bundles: tuple[str, ...] = ()
    dag_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.folders or self.bundles or self.dag_ids or self.tags)

    def author_controlled(self) -> bool:
        """True when only the DAG's author decides whether it matches (no folder or bundle given)."""
        return not (self.folders or self.bundles)

    def matches(self, dag: DagFacts) -> bool:
        if self.is_empty():
            return False
        if self.folders and not (dag.fileloc and any(_under(dag.fileloc, folder) for folder in self.folders)):
            return False
        if self.bundles and dag.bundle not in self.bundles:
            return False
        if self.dag_ids and not any(fnmatch.fnmatchcase(dag.dag_id, p) for p in self.dag_ids):
            return False
        return not self.tags or bool(dag.tags & set(self.tags))


@dataclasses.dataclass(frozen=True)
class TaskSelector:
    """Tasks chosen by their DAG, their task id and their operator class."""

    dags: DagSelector = DagSelector()
    task_ids: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()

    def matches(self, task: TaskFacts) -> bool:
        if not self.dags.matches(task.dag):
            return False
        if self.task_ids and not any(fnmatch.fnmatchcase(task.task_id, p) for p in self.task_ids):
            return False
        return not self.operators or any(path in self.operators for path in task.operator_paths)


def parse_dag_selector(value: Any, where: str) -> DagSelector:
    """A :class:`DagSelector` from its mapping form; ``where`` names the setting or manifest field in errors."""
    fields = _fields(value, _DAG_FIELDS, where)
    return DagSelector(**{name: _patterns(fields[name], f"{where}.{name}") for name in fields})


def parse_task_selector(value: Any, where: str) -> TaskSelector:
    """A :class:`TaskSelector` from its mapping form (``dags`` is itself a DAG selector mapping)."""
    fields = _fields(value, _TASK_FIELDS, where)
    dags = parse_dag_selector(fields["dags"], f"{where}.dags") if "dags" in fields else DagSelector()
    operators = _patterns(fields.get("operators", ()), f"{where}.operators")
    for path in operators:
        if "." not in path:
            raise ConfigError(f"{where}.operators", f"{path!r} is a bare class name; give the full import path "
                              "(e.g. airflow.providers.standard.operators.python.PythonOperator)")
    return TaskSelector(dags=dags, task_ids=_patterns(fields.get("task_ids", ()), f"{where}.task_ids"),
                        operators=operators)


def _fields(value: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"expected a mapping with keys among {', '.join(allowed)}, got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(where, f"unknown selector field(s) {', '.join(map(str, unknown))}; "
                          f"expected among {', '.join(allowed)}")
    return value


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ConfigError(where, "expected a list of non-empty strings")
    return tuple(sorted({i.strip() for i in items}))


def _under(path: str, folder: str) -> bool:
    real_path, real_folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real_path, real_folder]) == real_folder
