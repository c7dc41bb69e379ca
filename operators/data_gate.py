"""``DataGateOperator``: validation plus poisoning checks before training (a thin adapter over
:func:`pipeshield.checks.gate.run_gate`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from pipeshield.config import Settings
from pipeshield.errors import DataGateFailed, DataInputError, PipeshieldError
from pipeshield.plugins.gate_policy import STAGE_PARAM


class DataGateOperator(BaseOperator):
    """Check a batch with a Great Expectations suite and the poisoning portfolio, then fail, quarantine or
    warn (``on_flag``; default from ``PIPESHIELD_GATE_ON_FLAG``).

    The task fails (without retries) with a message naming the checks that fired. Its XCom value is
    :meth:`GateResult.to_dict`: ``report_path``/``report_uri``, ``report_sha256``, the dataset identities
    (``incoming``, ``reference``, ``clean``, ``quarantine``, ``training_data``: uri, sha256, rows) and,
    after a quarantine, ``clean_path`` for the training task. The report defaults to
    ``<PIPESHIELD_HOME>/reports/<dag_id>/<run_id>/<task_id>.json``.
    """

    template_fields: Sequence[str] = (
        "data", "reference", "suite", "label_column", "report_path", "clean_path", "quarantine_path", "on_flag",
    )
    ui_color = "#f4d03f"

    def __init__(
        self,
        *,
        data: str,
        label_column: str | None = None,
        suite: str | None = None,
        reference: str | None = None,
        schema: Mapping[str, str] | None = None,
        on_flag: str | None = None,
        poisoning: bool = True,
        poisoning_config: Mapping[str, Any] | None = None,
        report_path: str | None = None,
        clean_path: str | None = None,
        quarantine_path: str | None = None,
        stage: str = "validate",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.label_column = label_column
        self.suite = suite
        self.reference = reference
        self.schema = dict(schema) if schema else None
        self.on_flag = on_flag
        self.poisoning = poisoning
        self.poisoning_config = dict(poisoning_config) if poisoning_config else None
        self.report_path = report_path
        self.clean_path = clean_path
        self.quarantine_path = quarantine_path
        self.stage = stage
        self.params[STAGE_PARAM] = stage  # the stage marker pipeshield's cluster policies read

    def execute(self, context: Context) -> dict[str, Any]:
        from pipeshield.checks.gate import poisoning_config_from_dict, run_gate

        settings = Settings.load()
        report_path = self.report_path or _default_report_path(settings, context, self.task_id)
        try:
            result = run_gate(
                self.data,
                report_path=report_path,
                label_column=self.label_column or settings.gate_label_column,
                suite=self.suite or None,
                reference=self.reference or None,
                schema=self.schema,
                on_flag=self.on_flag or settings.gate_on_flag,  # type: ignore[arg-type]
                poisoning=self.poisoning,
                poisoning_config=poisoning_config_from_dict(self.poisoning_config),
                clean_path=self.clean_path or None,
                quarantine_path=self.quarantine_path or None,
            )
        except DataInputError:
            raise  # the file may appear or become readable: let Airflow retry
        except DataGateFailed as exc:
            raise AirflowFailException(str(exc)) from exc
        except PipeshieldError as exc:
            raise AirflowFailException(f"data gate cannot check this batch: {exc}") from exc
        summary = Path(result.report_path).with_suffix(".txt").read_text(encoding="utf-8")
        if result.action == "warned":
            self.log.warning("data gate flagged the batch (on_flag=warn), training goes on:\n%s", summary)
        else:
            self.log.info("%s", summary)
        return result.to_dict()


def _default_report_path(settings: Settings, context: Context, task_id: str) -> str:
    run_id = re.sub(r"[^A-Za-z0-9_.-]", "_", str(context["run_id"]))
    dag_id = context["dag"].dag_id
    return str(settings.home / "reports" / dag_id / run_id / f"{task_id}.json")
