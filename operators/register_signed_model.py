"""``RegisterSignedModelOperator``: the register stage. Scan, sign and register a model through the signed registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.hooks.mlflow import MlflowHook
from pipeshield.registry import ROOT_DIGEST_TAG
from pipeshield.signing import ArtifactDigest


class RegisterSignedModelOperator(BaseOperator):
    """Register ``model_uri`` as a new signed version of ``model_name`` (see ``MlflowHook.register_signed_model``).

    ``datasets`` and ``gate_reports`` are ``{"uri", "sha256"}`` items bound into the signature (other keys are
    ignored). ``gate_result`` (e.g. ``gate.output`` of a ``DataGateOperator``) adds the data the gate let
    through (its ``training_data``) to ``datasets`` and its report to ``gate_reports``. The key
    comes from the ``register`` stage's key provider (``vault_conn_id``). Returns (XCom) ``name``,
    ``version``, ``source`` (the signed copy) and ``root_digest``.
    """

    template_fields: Sequence[str] = ("model_uri", "model_name", "datasets", "gate_reports", "gate_result")
    ui_color = "#f5b041"

    def __init__(self, *, model_uri: str, model_name: str, datasets: Sequence[dict[str, str]] = (),
                 gate_reports: Sequence[dict[str, str]] = (), gate_result: Any = None, key_name: str | None = None,
                 mlflow_conn_id: str = MlflowHook.default_conn_name,
                 vault_conn_id: str = KeyProviderHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_uri, self.model_name = model_uri, model_name
        self.datasets, self.gate_reports, self.key_name = datasets, gate_reports, key_name
        self.gate_result = gate_result
        self.mlflow_conn_id, self.vault_conn_id = mlflow_conn_id, vault_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        datasets = [_digest(d) for d in self.datasets or ()]
        gate_reports = [_digest(d) for d in self.gate_reports or ()]
        if self.gate_result:
            datasets.append(_digest(self.gate_result["training_data"]))
            gate_reports.append(ArtifactDigest(self.gate_result["report_uri"], self.gate_result["report_sha256"]))
        hook = MlflowHook(self.mlflow_conn_id, self.vault_conn_id)
        mv = hook.register_signed_model(self.model_uri, self.model_name, key_name=self.key_name,
                                        datasets=datasets, gate_reports=gate_reports)
        self.log.info("registered signed %r v%s from %s", mv.name, mv.version, self.model_uri)
        return {"name": mv.name, "version": int(mv.version), "source": mv.source,
                "root_digest": mv.tags.get(ROOT_DIGEST_TAG)}


def _digest(item: dict[str, Any]) -> ArtifactDigest:
    return ArtifactDigest(uri=item["uri"], sha256=item["sha256"])
