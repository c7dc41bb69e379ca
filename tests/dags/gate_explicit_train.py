"""A training DAG that uses ``DataGateOperator`` explicitly; training reads the gate's XCom
(``training_data``: the clean split after a quarantine). Settings from the JSON file of the same name."""

import json
from pathlib import Path

import pandas as pd
from airflow.sdk import DAG, task
from pipeshield.checks._tables import local_path
from pipeshield.operators.data_gate import DataGateOperator

CONFIG = json.loads(Path(__file__).with_suffix(".json").read_text())

with DAG("gate_explicit_train", schedule=None):
    gate = DataGateOperator(
        task_id="gate",
        data="{{ params.data }}",
        params={"data": CONFIG["data"]},
        reference=CONFIG.get("reference"),
        suite=CONFIG.get("suite"),
        label_column="label",
        on_flag=CONFIG["on_flag"],
        report_path=CONFIG["report"],
    )

    @task
    def train(gate_result: dict) -> int:
        source = str(local_path(gate_result["training_data"]["uri"]))
        frame = pd.read_parquet(source)
        Path(CONFIG["trained_marker"]).write_text(json.dumps({"source": source, "rows": len(frame)}))
        return len(frame)

    train(gate.output)
