"""Load a DAG folder through ``DagBag`` (cluster policies applied) and describe each task for the stage audit."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from pipeshield.errors import StageError
from pipeshield.plugins.stage_policy import task_stage
from pipeshield.stages import MANIFEST_ENV, Finding, StageManifest, TaskRecord


def collect_tasks(dags_folder: Path, manifest: StageManifest) -> tuple[list[TaskRecord], list[Finding]]:
    """Every task of every DAG in ``dags_folder``, plus a finding per DAG file that failed to load
    (including DAGs the stage policy refused, e.g. for an unknown stage)."""
    from airflow.dag_processing.dagbag import DagBag

    if not Path(dags_folder).is_dir():
        raise StageError(f"DAG folder {str(dags_folder)!r} does not exist")
    previous = os.environ.get(MANIFEST_ENV)
    os.environ[MANIFEST_ENV] = manifest.source  # the policy judges the tasks against the audited manifest
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep it for the report
            bag = DagBag(dag_folder=str(dags_folder), safe_mode=False)
    finally:
        if previous is None:
            os.environ.pop(MANIFEST_ENV, None)
        else:
            os.environ[MANIFEST_ENV] = previous
    failures = [Finding("dag-import-error", f"file {path}", error.strip().splitlines()[-1])
                for path, error in sorted(bag.import_errors.items())]
    records = []
    for dag_id, dag in sorted(bag.dags.items()):
        for task in dag.tasks:
            stage, how = task_stage(task, manifest)
            needs = getattr(type(task), "pipeshield_operations", None)
            records.append(TaskRecord(dag_id, task.task_id, type(task).__name__, stage, how,
                                      frozenset(needs) if needs is not None else None))
    return records, failures
