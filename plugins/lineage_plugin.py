"""The ``airflow.plugins`` entry point that installs the lineage listener on every Airflow component."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipeshield.plugins import lineage_listener


class PipeshieldLineagePlugin(AirflowPlugin):
    name = "pipeshield_lineage"
    listeners = [lineage_listener]
