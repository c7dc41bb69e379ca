"""Test DAG for the secret-hygiene scan: every pipeshield operator in one run, each task acting as its stage.

encrypt -> decrypt -> tokenize, gate -> train -> register (signed) -> verify. Paths and names come from
the run conf (``workdir``, ``model_name``, ``tracking_uri``); XComs go through the encrypted backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from pipeshield.operators.data_gate import DataGateOperator
from pipeshield.operators.envelope import DecryptOperator, EncryptOperator, TokenizeColumnsOperator
from pipeshield.operators.register_signed_model import RegisterSignedModelOperator
from pipeshield.operators.verify_model import VerifyModelOperator

WORK = "{{ dag_run.conf['workdir'] }}"
NAME = "{{ dag_run.conf['model_name'] }}"

with DAG("pipeshield_secret_hygiene", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False,
         render_template_as_native_obj=True):
    encrypt = EncryptOperator(task_id="encrypt", src=f"{WORK}/people.csv", dst=f"{WORK}/enc/people.pse",
                              key_name="pipeshield-data", stage="train")
    decrypt = DecryptOperator(task_id="decrypt", src=f"{WORK}/enc/people.pse", dst=f"{WORK}/dec/people.csv",
                              key_name="pipeshield-data", stage="train")
    tokenize = TokenizeColumnsOperator(task_id="tokenize", src=f"{WORK}/dec/people.csv",
                                       dst=f"{WORK}/tok/people.parquet", token_columns=["email"],
                                       encrypt_columns=["ssn"], key_name="pipeshield-tokens", stage="train")
    gate = DataGateOperator(task_id="gate", data=f"{WORK}/train.csv", label_column="label", poisoning=False,
                            suite=f"{WORK}/suite.json", report_path=f"{WORK}/gate-report.json")

    @task
    def train(workdir: str, gate_result: dict, tracking_uri: str) -> str:
        """Fit a least-squares model; log params and tags; log it as a logged model of plain files."""
        import tempfile

        import numpy as np
        import pandas as pd
        from mlflow.entities import LoggedModelStatus
        from mlflow.tracking import MlflowClient

        frame = pd.read_csv(gate_result["training_data"]["uri"].removeprefix("file://"))
        features = frame.drop(columns=["label"]).to_numpy()
        coef = np.linalg.lstsq(features, frame["label"].to_numpy(), rcond=None)[0]
        client = MlflowClient(tracking_uri=tracking_uri)
        run = client.create_run("0", tags={"team": "hygiene", "dataset_sha256": gate_result["training_data"]["sha256"]})
        client.log_param(run.info.run_id, "rows", len(frame))
        client.log_param(run.info.run_id, "workdir", workdir)
        model = client.create_logged_model("0", name="model", source_run_id=run.info.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "weights.json").write_text(json.dumps({"coef": coef.round(6).tolist()}))
            Path(tmp, "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
            client.log_model_artifacts(model.model_id, tmp)
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        client.set_terminated(run.info.run_id)
        return f"models:/{model.model_id}"

    trained = train(WORK, gate.output, "{{ dag_run.conf['tracking_uri'] }}")
    register = RegisterSignedModelOperator(
        task_id="register", model_uri="{{ ti.xcom_pull(task_ids='train') }}", model_name=NAME,
        datasets=[{"uri": "{{ ti.xcom_pull(task_ids='gate')['training_data']['uri'] }}",
                   "sha256": "{{ ti.xcom_pull(task_ids='gate')['training_data']['sha256'] }}"}])
    verify = VerifyModelOperator(task_id="verify", model_name=NAME,
                                 version="{{ ti.xcom_pull(task_ids='register')['version'] }}",
                                 dest_dir=f"{WORK}/verified")

    encrypt >> decrypt >> tokenize
    trained >> register >> verify
