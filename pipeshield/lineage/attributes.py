"""Names of the ``pipeshield.*`` span attributes, events and MLflow tags (see ``docs/lineage.md``).

Values are identities (URIs, SHA-256 digests, ids, versions, verdicts), never key material, tokens or
raw feature values.
"""

from __future__ import annotations

# datasets
DATASET_URI = "pipeshield.dataset.uri"
DATASET_SHA256 = "pipeshield.dataset.sha256"
DATASET_TABLE_DIGEST = "pipeshield.dataset.table_digest"
DATASET_ROWS = "pipeshield.dataset.rows"
DATASET_NAME = "pipeshield.dataset.name"

# data gate
GATE_REPORT_SHA256 = "pipeshield.gate.report_sha256"
GATE_REPORT_URI = "pipeshield.gate.report_uri"
GATE_VERDICT = "pipeshield.gate.verdict"

# keys (reference and version only)
KEY_REF = "pipeshield.key.ref"
KEY_VERSION = "pipeshield.key.version"

# models
MODEL_NAME = "pipeshield.model.name"
MODEL_VERSION = "pipeshield.model.version"
MODEL_ID = "pipeshield.model.id"
MODEL_DIGEST = "pipeshield.model.manifest_digest"
MODEL_SIGNATURE_DIGEST = "pipeshield.model.signature_digest"
MODEL_VERIFIED = "pipeshield.model.verified"

# pipeline
STAGE = "pipeshield.stage"
MLFLOW_RUN_ID = "pipeshield.mlflow.run_id"
AIRFLOW_DAG_ID = "pipeshield.airflow.dag_id"
AIRFLOW_TASK_ID = "pipeshield.airflow.task_id"
AIRFLOW_RUN_ID = "pipeshield.airflow.run_id"
AIRFLOW_TRY_NUMBER = "pipeshield.airflow.try_number"
INLETS = "pipeshield.inlets"
OUTLETS = "pipeshield.outlets"
TASK_STATE = "pipeshield.task.state"

# serving
PREDICTION_ID = "pipeshield.prediction.id"
INPUT_SHA256 = "pipeshield.input.sha256"
INPUT_ROWS = "pipeshield.input.rows"
INPUT_CONTENT_TYPE = "pipeshield.input.content_type"
HTTP_STATUS = "pipeshield.http.status"

# events
EVENT_TASK_FINISHED = "pipeshield.task.finished"

# MLflow tags
TAG_TRACEPARENT = "pipeshield.traceparent"
"""On runs (run-context provider) and model versions: W3C traceparent of the producing span."""
TAG_TRACE_ID = "pipeshield.trace_id"

PREDICTION_HEADER = "X-Pipeshield-Prediction-Id"
