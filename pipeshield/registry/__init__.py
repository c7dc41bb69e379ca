"""Signed model registration in MLflow, the registry's enforcement rules, and the deploy gate.

>>> from pipeshield.registry import register_signed_model, verify_registered_model, trusted_keys
>>> mv = register_signed_model("models:/m-0123...", "churn", datasets=[{"uri": "s3://b/train.csv", "sha256": "..."}])
>>> verified = verify_registered_model("churn", mv.version, keys=trusted_keys(Settings.load()))
>>> load_model_from(verified.path)          # deploy only from the verified copy

The server side is the ``signed+sqlite://`` / ``signed+postgresql://`` registry store
(``pipeshield.plugins.mlflow_registry_store``); ``pipeshield verify models:/<name>/<version>`` uses
:func:`resolve_registered_model`.
"""

from __future__ import annotations

from pipeshield.registry._deploy import (
    VerifiedModel,
    parse_models_uri,
    registry_expectations,
    resolve_registered_model,
    verify_registered_model,
)
from pipeshield.registry._enforce import (
    check_version,
    model_id_of,
    next_version_marker,
    parse_next_version,
    parse_wait_version,
    wait_version_marker,
)
from pipeshield.registry._errors import (
    MlflowUnreachableError,
    RegistrationRefusedError,
    RegistryError,
    VersionConflictError,
)
from pipeshield.registry._register import register_signed_model
from pipeshield.registry._tags import (
    FORMAT_TAG,
    KEY_TAG,
    KEY_VERSION_TAG,
    ROOT_DIGEST_TAG,
    SIGNATURE_TAGS,
    TAG_PREFIX,
    is_protected_tag,
    signature_tags,
)
from pipeshield.registry._trust import TRUSTED_KEYS_DIR_ENV, keys_from_directory, trusted_keys

__all__ = [
    "FORMAT_TAG",
    "KEY_TAG",
    "KEY_VERSION_TAG",
    "ROOT_DIGEST_TAG",
    "SIGNATURE_TAGS",
    "TAG_PREFIX",
    "TRUSTED_KEYS_DIR_ENV",
    "MlflowUnreachableError",
    "RegistrationRefusedError",
    "RegistryError",
    "VerifiedModel",
    "VersionConflictError",
    "check_version",
    "is_protected_tag",
    "keys_from_directory",
    "model_id_of",
    "next_version_marker",
    "parse_models_uri",
    "parse_next_version",
    "parse_wait_version",
    "register_signed_model",
    "registry_expectations",
    "resolve_registered_model",
    "signature_tags",
    "trusted_keys",
    "verify_registered_model",
    "wait_version_marker",
]
