"""Serving verified models with a prediction id and a prediction span per request.

``load_verified_model("models:/name/version")`` verifies the version (``pipeshield.signing``) and
loads it from the verified copy; ``create_app`` / ``serve`` expose it MLflow-scoring-server style.
"""

from pipeshield.serving._app import create_app, serve
from pipeshield.serving._model import VerifiedPyFunc, input_digest, load_verified_model, parse_model_uri

__all__ = ["VerifiedPyFunc", "create_app", "input_digest", "load_verified_model", "parse_model_uri", "serve"]
