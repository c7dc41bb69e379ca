"""Write a manifest's policies and roles to Vault (``pipeshield stages apply``), optionally issuing AppRole credentials."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import hvac
import hvac.exceptions
import requests

from pipeshield.errors import AuthenticationError, PermissionDeniedError, ProviderUnavailableError, StageError
from pipeshield.stages._manifest import StageManifest
from pipeshield.stages._vault import approle_roles, kubernetes_roles, policies


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    policies: tuple[str, ...]
    approle_roles: tuple[str, ...]
    kubernetes_roles: tuple[str, ...]
    enabled_auth: tuple[str, ...]
    credentials: tuple[Path, ...]


def apply_manifest(client: hvac.Client, manifest: StageManifest, credentials_dir: Path | None = None) -> ApplyResult:
    """Write every policy and role (idempotent); enable missing auth mounts; issue secret-ids on request.

    With ``credentials_dir``, each AppRole stage gets ``<stage>.role-id`` and ``<stage>.secret-id``
    (mode 0600, directory 0700): the files a worker points ``PIPESHIELD_STAGE_<STAGE>_*`` at.
    """
    policy_texts = policies(manifest)
    approles, k8s_roles = approle_roles(manifest), kubernetes_roles(manifest)
    enabled = []
    for name, text in policy_texts.items():
        _call(client, "put", f"sys/policies/acl/{name}", {"policy": text})
    wanted = {manifest.vault.approle_mount: "approle"} if approles else {}
    if k8s_roles:
        wanted[manifest.vault.kubernetes_mount] = "kubernetes"
    mounted = _call(client, "get", "sys/auth") or {}
    mounted = mounted.get("data", mounted)
    for mount, method in wanted.items():
        if f"{mount}/" not in mounted:
            _call(client, "post", f"sys/auth/{mount}", {"type": method})
            enabled.append(mount)
    for name, role in approles.items():
        _call(client, "post", f"auth/{manifest.vault.approle_mount}/role/{name}", role)
    for name, role in k8s_roles.items():
        _call(client, "post", f"auth/{manifest.vault.kubernetes_mount}/role/{name}", role)
    written: list[Path] = []
    if credentials_dir is not None:
        written = _issue_credentials(client, manifest, credentials_dir)
    return ApplyResult(tuple(policy_texts), tuple(approles), tuple(k8s_roles), tuple(enabled), tuple(written))


def _issue_credentials(client: hvac.Client, manifest: StageManifest, directory: Path) -> list[Path]:
    mount = manifest.vault.approle_mount
    issued: dict[str, tuple[str, str]] = {}
    for stage in manifest.stages.values():
        if stage.approle is None:
            continue
        role_id = _call(client, "get", f"auth/{mount}/role/{stage.approle.role}/role-id")["data"]["role_id"]
        secret_id = _call(client, "post", f"auth/{mount}/role/{stage.approle.role}/secret-id", {})["data"]["secret_id"]
        issued[stage.name] = (role_id, secret_id)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    written = []
    for stage_name, (role_id, secret_id) in issued.items():
        for suffix, value in (("role-id", role_id), ("secret-id", secret_id)):
            written.append(_write_private(directory / f"{stage_name}.{suffix}", value))
    return written


def _write_private(path: Path, value: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _call(client: hvac.Client, method: str, path: str, body: dict | None = None) -> dict | None:
    try:
        response = getattr(client.adapter, method)(f"/v1/{path}", json=body) if body is not None \
            else getattr(client.adapter, method)(f"/v1/{path}")
    except hvac.exceptions.Forbidden:
        raise PermissionDeniedError(path, "apply") from None
    except hvac.exceptions.Unauthorized:
        raise AuthenticationError(f"Vault refused the token while writing {path!r}") from None
    except hvac.exceptions.VaultError as exc:
        errors = "; ".join(str(e) for e in (exc.errors or [])) or exc.__class__.__name__
        raise StageError(f"Vault refused {method.upper()} {path!r}: {errors}") from None
    except requests.RequestException as exc:
        raise ProviderUnavailableError(f"Vault unreachable: {exc.__class__.__name__}") from None
    return response if isinstance(response, dict) else None
