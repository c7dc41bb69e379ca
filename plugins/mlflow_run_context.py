"""MLflow ``run_context_provider`` plugin: tag runs with the Airflow task and the current traceparent.

MLflow asks every installed provider at ``start_run``. Inside an Airflow task the ``AIRFLOW_CTX_*``
variables name the dag, task and run; the current span (Airflow's ``worker.<task>`` or a pipeshield
span) gives the ``traceparent`` that links the MLflow run to the trace. Imports no Airflow.
"""

from __future__ import annotations

import os

from mlflow.tracking.context.abstract_context import RunContextProvider

from pipeshield.lineage import attributes as A
from pipeshield.lineage.context import lineage_tags

_AIRFLOW_VARS = {
    "AIRFLOW_CTX_DAG_ID": A.AIRFLOW_DAG_ID,
    "AIRFLOW_CTX_TASK_ID": A.AIRFLOW_TASK_ID,
    "AIRFLOW_CTX_DAG_RUN_ID": A.AIRFLOW_RUN_ID,
    "AIRFLOW_CTX_TRY_NUMBER": A.AIRFLOW_TRY_NUMBER,
}


class PipeshieldRunContext(RunContextProvider):
    """Adds ``pipeshield.airflow.*``, ``pipeshield.stage``, ``pipeshield.traceparent`` and ``pipeshield.trace_id``."""

    def in_context(self) -> bool:
        return bool(os.environ.get("AIRFLOW_CTX_DAG_ID") or lineage_tags())

    def tags(self) -> dict[str, str]:
        tags = {tag: os.environ[var] for var, tag in _AIRFLOW_VARS.items() if os.environ.get(var)}
        if os.environ.get("PIPESHIELD_STAGE"):
            tags[A.STAGE] = os.environ["PIPESHIELD_STAGE"]
        tags.update(lineage_tags())
        return tags
