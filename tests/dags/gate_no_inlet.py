"""A training task marked for the gate but declaring no dataset: the policy must refuse the DAG."""

from airflow.sdk import DAG, task

with DAG("gate_no_inlet", schedule=None):

    @task(params={"pipeshield_stage": "train"})
    def train() -> None:
        pass

    train()
