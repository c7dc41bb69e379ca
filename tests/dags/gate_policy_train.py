"""An ordinary training DAG with no pipeshield code: the training task only declares its dataset
(an inlet) and the ``pipeshield_stage`` marker. The cluster policy puts the data gate in front of it.

Test settings come from the JSON file of the same name next to this file (written by the test)."""

import json
from pathlib import Path

import pandas as pd
from airflow.sdk import DAG, Asset, task

CONFIG = json.loads(Path(__file__).with_suffix(".json").read_text())

with DAG("gate_policy_train", schedule=None, tags=["ml"]):

    @task
    def extract() -> str:
        return CONFIG["data"]

    @task(inlets=[Asset(CONFIG["data"], extra={"pipeshield": CONFIG.get("gate", {})})],
          params={"pipeshield_stage": "train"})
    def train(path: str) -> int:
        source = CONFIG.get("gate", {}).get("clean") or path
        frame = pd.read_parquet(source)
        Path(CONFIG["trained_marker"]).write_text(json.dumps({"source": source, "rows": len(frame)}))
        return len(frame)

    @task
    def publish(rows: int) -> None:
        print(f"trained on {rows} rows")

    publish(train(extract()))
