"""JSON Schema of the stage manifest, and schema errors turned into messages naming line and field."""

from __future__ import annotations

from typing import Any

import jsonschema

from pipeshield.errors import ManifestError
from pipeshield.stages._yaml import LineMap, Location, field_name

#: Transit operations a stage may be granted on a key.
OPERATIONS = ("datakey", "decrypt", "encrypt", "hmac", "sign", "verify", "rewrap", "read")
#: Operations on a KV v2 secret path.
KV_OPERATIONS = ("read", "write", "list", "delete")
#: Vault ACL capabilities (for the raw ``vault_paths`` escape hatch).
CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny")
#: MLflow permissions (mlflow/server/auth/permissions.py) and the resources they apply to.
MLFLOW_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
MLFLOW_RESOURCES = ("experiment", "registered_model")

STAGE_NAME = r"^[a-z][a-z0-9_-]{0,39}$"
_VAULT_NAME = r"^\w([\w.-]*\w)?$"
_KEY_NAME = r"^[\w.*+-]+$"  # wildcards are accepted here and flagged by the audit
_ACL_PATH = r"^[\w.*+-]+(/[\w.*+-]*)*$"
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_DURATION = {
    "title": "duration",
    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^[1-9][0-9]*[smh]?$"}],
}


def _list_of(choices: tuple[str, ...], title: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(choices), "title": title}}


def _grants(name_pattern: str, choices: tuple[str, ...], title: str) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": name_pattern},
        "additionalProperties": _list_of(choices, title),
    }


_APPROLE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "role": {"type": "string", "pattern": _VAULT_NAME},
        "secret_id_ttl": _DURATION,
        "secret_id_num_uses": {"type": "integer", "minimum": 0},
        "token_bound_cidrs": {"type": "array", "items": {"type": "string"}},
        "secret_id_bound_cidrs": {"type": "array", "items": {"type": "string"}},
    },
}

_KUBERNETES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "role": {"type": "string", "pattern": _VAULT_NAME},
        "service_account": {"type": "string", "pattern": _K8S_NAME},
        "namespace": {"type": "string", "pattern": _K8S_NAME},
        "audience": {"type": "string", "minLength": 1},
    },
}

_STAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["auth"],
    "properties": {
        "description": {"type": "string"},
        "operators": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": r"^[\w.]+$"}},
        "queue": {"type": "string", "pattern": r"^[\w.-]+$"},
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"approle": _APPROLE, "kubernetes": _KUBERNETES},
        },
        "token_ttl": _DURATION,
        "token_max_ttl": _DURATION,
        "transit": _grants(_KEY_NAME, OPERATIONS, "Transit operation"),
        "kv": _grants(_ACL_PATH, KV_OPERATIONS, "KV operation"),
        "vault_paths": _grants(_ACL_PATH, CAPABILITIES, "Vault capability"),
        "mlflow": {
            "type": "object",
            "additionalProperties": False,
            "properties": {r: {"enum": list(MLFLOW_PERMISSIONS), "title": "MLflow permission"} for r in MLFLOW_RESOURCES},
        },
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pipeshield stage manifest",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "stages"],
    "properties": {
        "version": {"const": 1},
        "vault": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "policy_prefix": {"type": "string", "pattern": r"^[\w.-]*$"},
                "transit_mount": {"type": "string", "pattern": _ACL_PATH},
                "kv_mount": {"type": "string", "pattern": _ACL_PATH},
                "approle_mount": {"type": "string", "pattern": _ACL_PATH},
                "kubernetes_mount": {"type": "string", "pattern": _ACL_PATH},
            },
        },
        "kubernetes": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"namespace": {"type": "string", "pattern": _K8S_NAME}},
        },
        "stages": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": STAGE_NAME},
            "additionalProperties": _STAGE,
        },
    },
}



def _is_int(checker: Any, instance: Any) -> bool:
    """JSON Schema counts 1.0 as an integer; the manifest's counts and durations are used as Python ints."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_int))
_VALIDATOR = _Validator(SCHEMA)


def validate(document: Any, lines: LineMap, source: str) -> None:
    """Raise :class:`ManifestError` for the first schema violation (by line), naming line and field."""
    problems = [_describe(error) for error in _VALIDATOR.iter_errors(document)]
    if not problems:
        return
    path, problem = min(problems, key=lambda item: (lines.line(item[0]), -len(item[0])))
    raise ManifestError(source, lines.line(path), field_name(path), problem)


def _describe(error: jsonschema.ValidationError) -> tuple[Location, str]:
    path: Location = tuple(error.absolute_path)
    schema, instance = error.schema, error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)[0]
        return (*path, extra), f"unknown key {extra!r}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        title = schema.get("title", "value")
        return path, f"unknown {title} {instance!r}; allowed: {', '.join(map(str, schema['enum']))}"
    if error.validator == "required":
        missing = next(k for k in schema["required"] if k not in instance)
        return path, f"missing required key {missing!r}"
    if error.validator in ("minProperties", "minItems"):
        return path, "must not be empty"
    if error.validator == "uniqueItems":
        return path, "lists the same entry twice"
    if error.validator == "const":
        return path, f"must be {error.validator_value!r}, got {instance!r}"
    if error.validator == "pattern" and "propertyNames" in error.schema_path:
        return (*path, instance), f"invalid name {instance!r} (must match {error.validator_value})"
    if error.validator == "pattern":
        return path, f"invalid value {instance!r} (must match {error.validator_value})"
    if error.validator == "oneOf" and schema.get("title") == "duration":
        return path, f"invalid duration {instance!r} (seconds, or a number with s, m or h)"
    if error.validator == "type":
        got = "nothing" if instance is None else type(instance).__name__
        return path, f"expected {error.validator_value}, got {got}"
    return path, error.message
