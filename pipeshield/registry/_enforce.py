"""What the ``signed+*`` registry store checks before a version exists or a protected alias moves.

The store re-hashes the artifacts behind the version (downloaded from the artifact store) and accepts
it only when the signature verifies with a trusted key, binds this registered name, this version
number, the logged model and the run, and the signature tags sent with the version record exactly that
signature. A version-number mismatch carries :func:`next_version_marker` so that the signer can re-sign
for the number the registry will assign and retry, or :func:`wait_version_marker` when the number the
signer holds is reserved for it but earlier numbers are still being registered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pipeshield.registry._errors import RegistrationRefusedError, VersionConflictError
from pipeshield.registry._tags import KEY_TAG, has_signature_tags, tag_mismatch
from pipeshield.signing import ModelBindings, SignedContents, TrustedKeys, verify_model

_MARKER = re.compile(r"\[pipeshield:next-version=([1-9][0-9]*)\]")
_WAIT_MARKER = re.compile(r"\[pipeshield:wait-version=([1-9][0-9]*)\]")


def next_version_marker(version: int) -> str:
    return f"[pipeshield:next-version={version}]"


def parse_next_version(message: str) -> int | None:
    """The version number a refusal asks the signer to bind, or None."""
    match = _MARKER.search(message or "")
    return int(match.group(1)) if match else None


def wait_version_marker(version: int) -> str:
    return f"[pipeshield:wait-version={version}]"


def parse_wait_version(message: str) -> int | None:
    """The reserved version number a refusal asks the signer to send again later (unchanged), or None."""
    match = _WAIT_MARKER.search(message or "")
    return int(match.group(1)) if match else None


def require_signature_tags(tags: Mapping[str, str], name: str) -> None:
    """Refuse early (before any download) a version sent without signature tags."""
    if not has_signature_tags(tags):
        raise RegistrationRefusedError(
            f"unsigned model version of {name!r} rejected: no pipeshield signature tags "
            "(register it with pipeshield's register_signed_model)")


def model_id_of(source: str | None) -> str | None:
    """The logged-model id of a ``models:/m-...`` source, else None."""
    if source and source.startswith("models:/m-"):
        return source[len("models:/"):].split("/", 1)[0]
    return None


def check_version(model_dir: Path, keys: TrustedKeys, *, name: str, version: int, model_id: str | None,
                  run_id: str | None, tags: Mapping[str, str]) -> SignedContents:
    """Verify ``model_dir`` as version ``version`` of ``name``; raise ``RegistrationRefusedError`` naming the cause."""
    require_signature_tags(tags, name)
    if tags.get(KEY_TAG) != keys.key_name:
        raise RegistrationRefusedError(
            f"{name!r} v{version}: signed with key {tags.get(KEY_TAG)!r}, this registry trusts {keys.key_name!r}")
    expected = ModelBindings(name=name, model_id=model_id, run_id=run_id)
    result = verify_model(model_dir, keys, expected=expected)
    contents = result.contents
    if not result or contents is None:
        raise RegistrationRefusedError(f"{name!r} v{version}: signature check failed: {result.reason}")
    signed_version = contents.bindings.version
    if signed_version is None:
        raise RegistrationRefusedError(f"{name!r} v{version}: the signature binds no version number")
    if signed_version != version:
        raise VersionConflictError(
            f"{name!r}: the signature binds version {signed_version} but the registry assigns version "
            f"{version}; re-sign for version {version} {next_version_marker(version)}",
            signed_version=signed_version, assigned_version=version)
    problem = tag_mismatch(tags, contents)
    if problem:
        raise RegistrationRefusedError(f"{name!r} v{version}: {problem}")
    return contents
