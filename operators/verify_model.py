"""``VerifyModelOperator``: the deploy gate. Nothing downstream may load a model it did not verify."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.hooks.mlflow import MlflowHook
from pipeshield.signing import ArtifactDigest, ModelBindings


class VerifyModelOperator(BaseOperator):
    """Download a registered model version, re-hash it, verify its signature and bindings.

    Bindings checked: registered name and version, logged model and run (from the registry, or
    ``run_id`` when given), and when given the ``datasets`` and ``gate_reports`` (``{"uri", "sha256"}``
    items, e.g. pulled from the data gate's XCom). Extra, missing or changed files fail the task.
    Returns (XCom) the verified copy's ``path`` (load the model from there only; also pushed under the XCom
    key ``path``, so ``verify.output["path"]`` hands it to the next task), ``root_digest``,
    ``content_digest``, ``key_version``, ``name``, ``version``, ``run_id``, ``model_id`` and ``files``.
    Trusted public keys: ``PIPESHIELD_TRUSTED_KEYS_DIR`` or the key provider of ``vault_conn_id``.
    """

    template_fields: Sequence[str] = ("model_name", "version", "alias", "run_id", "datasets", "gate_reports",
                                      "dest_dir")
    ui_color = "#a3d9a5"

    def __init__(self, *, model_name: str, version: str | int | None = None, alias: str | None = None,
                 run_id: str | None = None, datasets: Sequence[dict[str, str]] = (),
                 gate_reports: Sequence[dict[str, str]] = (), dest_dir: str | None = None,
                 key_name: str | None = None, mlflow_conn_id: str = MlflowHook.default_conn_name,
                 vault_conn_id: str = KeyProviderHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name, self.version, self.alias = model_name, version, alias
        self.run_id, self.datasets, self.gate_reports = run_id, datasets, gate_reports
        self.dest_dir, self.key_name = dest_dir, key_name
        self.mlflow_conn_id, self.vault_conn_id = mlflow_conn_id, vault_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        expected = ModelBindings(run_id=self.run_id or None,
                                 datasets=tuple(ArtifactDigest(**d) for d in self.datasets or ()),
                                 gate_reports=tuple(ArtifactDigest(**d) for d in self.gate_reports or ()))
        hook = MlflowHook(self.mlflow_conn_id, self.vault_conn_id)
        verified = hook.verify_model_version(self.model_name, self.version or None, alias=self.alias or None,
                                             expected=expected, key_name=self.key_name, dest_dir=self.dest_dir)
        self.log.info("verified %r v%s (%d files, root digest %s, key %s v%d) at %s", verified.name,
                      verified.version, len(verified.files), verified.root_digest, verified.key_name,
                      verified.key_version, verified.path)
        context["ti"].xcom_push(key="path", value=str(verified.path))
        return verified.to_dict()
