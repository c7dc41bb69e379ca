"""A pyfunc wrapper that loads a model only after verification and records every prediction."""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pipeshield.lineage import attributes as A
from pipeshield.lineage import lineage_span, link_to
from pipeshield.lineage.errors import LineageError
from pipeshield.lineage.verify import ModelVerifier, VerifiedModel, require_verifier


def parse_model_uri(model_uri: str, tracking_uri: str | None) -> tuple[str, str]:
    """``models:/name/version`` or ``models:/name@alias`` to (name, version)."""
    if not model_uri.startswith("models:/"):
        raise LineageError(f"expected models:/<name>/<version> or models:/<name>@<alias>, got {model_uri!r}")
    rest = model_uri[len("models:/"):]
    if "@" in rest:
        from mlflow.tracking import MlflowClient

        name, alias = rest.split("@", 1)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise LineageError(f"expected models:/<name>/<version>, got {model_uri!r}")
    return name, version


def training_traceparent(name: str, version: str, tracking_uri: str | None) -> str | None:
    """The training span context stored on the model version (or, failing that, on its run)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    model_version = client.get_model_version(name, version)
    if traceparent := (model_version.tags or {}).get(A.TAG_TRACEPARENT):
        return traceparent
    if model_version.run_id:
        return client.get_run(model_version.run_id).data.tags.get(A.TAG_TRACEPARENT)
    return None


def input_digest(data: Any) -> str:
    """SHA-256 of a request body or a DataFrame's split-JSON rendering (the values never leave)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return hashlib.sha256(data).hexdigest()
    to_json = getattr(data, "to_json", None)
    rendered = to_json(orient="split", index=False) if callable(to_json) else repr(data)
    return hashlib.sha256(rendered.encode()).hexdigest()


class VerifiedPyFunc:
    """A verified MLflow pyfunc model; ``predict`` emits a ``pipeshield.predict`` span per call."""

    def __init__(self, pyfunc: Any, verified: VerifiedModel, training_traceparent: str | None = None,
                 *, spans: bool = True) -> None:
        self.pyfunc = pyfunc
        self.verified = verified
        self.training_traceparent = training_traceparent
        self.spans = spans
        self.links = link_to(training_traceparent, "trained_by")
        self._model_attributes: dict[str, Any] = {
            A.MODEL_NAME: verified.name, A.MODEL_VERSION: verified.version, A.MODEL_DIGEST: verified.manifest_digest,
            A.MODEL_VERIFIED: verified.verified, A.STAGE: "serve",
        }
        if verified.model_id:
            self._model_attributes[A.MODEL_ID] = verified.model_id
        if verified.signature_digest:
            self._model_attributes[A.MODEL_SIGNATURE_DIGEST] = verified.signature_digest

    @property
    def metadata(self) -> Any:
        return self.pyfunc.metadata

    def prediction_attributes(self, prediction_id: str, input_sha256: str) -> dict[str, Any]:
        return {**self._model_attributes, A.PREDICTION_ID: prediction_id, A.INPUT_SHA256: input_sha256}

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.predict_with_id(data, params)[1]

    def predict_with_id(self, data: Any, params: dict[str, Any] | None = None) -> tuple[str, Any]:
        """(prediction id, predictions); the span carries the model identity and an input digest."""
        prediction_id = new_prediction_id()
        if not self.spans:
            return prediction_id, self._call(data, params)
        attributes = self.prediction_attributes(prediction_id, input_digest(data))
        with lineage_span("predict", attributes, links=self.links) as span:
            output = self._call(data, params)
            span.set_attribute(A.INPUT_ROWS, _length(data))
        return prediction_id, output

    def _call(self, data: Any, params: dict[str, Any] | None) -> Any:
        return self.pyfunc.predict(data, params=params) if params else self.pyfunc.predict(data)


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def _length(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return 1


def load_verified_model(
    model_uri: str, *, tracking_uri: str | None = None, verifier: ModelVerifier | None = None,
    dest: str | Path | None = None, spans: bool = True,
) -> VerifiedPyFunc:
    """Verify ``models:/name/version`` (or ``@alias``) and load it from the verified copy only.

    Raises :class:`~pipeshield.lineage.errors.VerifierUnavailableError` when no verifier is installed
    and :class:`~pipeshield.lineage.errors.ModelVerificationError` when verification fails.
    """
    import mlflow.pyfunc

    check = require_verifier(verifier)
    name, version = parse_model_uri(model_uri, tracking_uri)
    target = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="pipeshield-model-"))
    traceparent = training_traceparent(name, version, tracking_uri)
    with lineage_span("model.load", {A.MODEL_NAME: name, A.MODEL_VERSION: version, A.STAGE: "serve"},
                      links=link_to(traceparent, "trained_by")) as span:
        verified = check(name, version, tracking_uri=tracking_uri, dest=target)
        span.set_attributes({A.MODEL_DIGEST: verified.manifest_digest, A.MODEL_VERIFIED: verified.verified})
        if verified.signature_digest:
            span.set_attribute(A.MODEL_SIGNATURE_DIGEST, verified.signature_digest)
        pyfunc = mlflow.pyfunc.load_model(str(verified.local_path))
    return VerifiedPyFunc(pyfunc, verified, traceparent, spans=spans)
