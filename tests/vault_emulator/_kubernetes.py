"""Kubernetes auth method (spec §3.7). Steps 1-4 of login run here; step 5 (TokenReview against the
Kubernetes API) is the emulator's pluggable ``token_reviewer(jwt, config) -> bool`` (default: accept)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.vault_emulator import _fields as f
from tests.vault_emulator._approle import TOKEN_DEFAULTS, issue_login_token, token_fields
from tests.vault_emulator._core import NAME, Backend, Core, Mount, Request, Response, route
from tests.vault_emulator._errors import VaultError, permission_denied

DEFAULT_ISSUER = "kubernetes/serviceaccount"


def _public_pem(pem: str) -> str:
    """A PEM public key, or the public key of a PEM certificate (as Vault accepts both in ``pem_keys``)."""
    if "BEGIN CERTIFICATE" not in pem:
        return pem
    public = x509.load_pem_x509_certificate(pem.encode()).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _claims(payload: dict[str, Any]) -> dict[str, str]:
    """Service-account facts from legacy (``kubernetes.io/serviceaccount/...``) or projected claims."""
    projected = payload.get("kubernetes.io")
    if isinstance(projected, dict):
        account = projected.get("serviceaccount") or {}
        return {"namespace": str(projected.get("namespace", "")), "name": str(account.get("name", "")),
                "uid": str(account.get("uid", "")), "secret": ""}
    prefix = "kubernetes.io/serviceaccount/"
    return {"namespace": str(payload.get(prefix + "namespace", "")),
            "name": str(payload.get(prefix + "service-account.name", "")),
            "uid": str(payload.get(prefix + "service-account.uid", "")),
            "secret": str(payload.get(prefix + "secret.name", ""))}


class KubernetesBackend(Backend):
    type = "kubernetes"

    def __init__(self, core: Core, mount: Mount) -> None:
        super().__init__(core, mount)
        self.config: dict[str, Any] | None = None
        self.roles: dict[str, dict[str, Any]] = {}
        self.entities: dict[str, str] = {}
        self.routes = [
            route(r"login", unauthenticated=True, update=self.login),
            route(r"config", read=self.read_config, update=self.write_config),
            route(r"role/?", list=self.list_roles),
            route(rf"role/(?P<role>{NAME})", read=self.read_role, update=self.write_role, delete=self.delete_role,
                  exists=lambda req, g: g["role"] in self.roles),
        ]

    # --- config and roles ----------------------------------------------------------------
    def write_config(self, req: Request, _: dict[str, str]) -> None:
        data = req.data
        host = f.text(data, "kubernetes_host")
        if not host:
            raise VaultError(400, "no host provided")
        self.config = {
            "kubernetes_host": host, "kubernetes_ca_cert": f.text(data, "kubernetes_ca_cert"),
            "pem_keys": f.comma_list(data, "pem_keys") if not isinstance(data.get("pem_keys"), list)
            else [str(k) for k in data["pem_keys"]],
            "issuer": f.text(data, "issuer"), "disable_iss_validation": f.boolean(data, "disable_iss_validation", True),
            "disable_local_ca_jwt": f.boolean(data, "disable_local_ca_jwt"),
            "token_reviewer_jwt_set": bool(f.text(data, "token_reviewer_jwt")),
        }

    def read_config(self, req: Request, _: dict[str, str]) -> Response | None:
        return None if self.config is None else Response(data=dict(self.config))

    def list_roles(self, req: Request, _: dict[str, str]) -> Response:
        return Response(data={"keys": sorted(self.roles)})

    def write_role(self, req: Request, groups: dict[str, str]) -> None:
        data = req.data
        role = self.roles.get(groups["role"]) or {
            "bound_service_account_names": [], "bound_service_account_namespaces": [], "audience": "",
            "alias_name_source": "serviceaccount_uid", **TOKEN_DEFAULTS,
        }
        role = token_fields(data, role)
        for field in ("bound_service_account_names", "bound_service_account_namespaces"):
            if f.present(data, field):
                role[field] = f.comma_list(data, field)
            if not role[field]:
                raise VaultError(400, f'"{field}" can not be empty')
        if f.present(data, "audience"):
            role["audience"] = f.text(data, "audience")
        if f.present(data, "alias_name_source"):
            role["alias_name_source"] = f.text(data, "alias_name_source")
        self.roles[groups["role"]] = role

    def read_role(self, req: Request, groups: dict[str, str]) -> Response | None:
        role = self.roles.get(groups["role"])
        return None if role is None else Response(data=dict(role))

    def delete_role(self, req: Request, groups: dict[str, str]) -> None:
        self.roles.pop(groups["role"], None)

    # --- login -------------------------------------------------------------------------------
    def login(self, req: Request, _: dict[str, str]) -> Response:
        name, token = f.text(req.data, "role"), f.text(req.data, "jwt")
        if not name:
            raise VaultError(400, "missing role")
        if not token:
            raise VaultError(400, "missing jwt")
        role = self.roles.get(name)
        if role is None:
            raise VaultError(400, f'invalid role name "{name}"')
        if self.config is None:
            raise VaultError(400, "could not load backend configuration")
        payload = self._verified_payload(token, role)
        claims = _claims(payload)
        if "*" not in role["bound_service_account_names"] and claims["name"] not in role["bound_service_account_names"]:
            raise VaultError(403, "service account name not authorized")
        namespaces = role["bound_service_account_namespaces"]
        if "*" not in namespaces and claims["namespace"] not in namespaces:
            raise VaultError(403, "namespace not authorized")
        if not self.core.token_reviewer(token, dict(self.config)):
            raise permission_denied()
        metadata = {"role": name, "service_account_name": claims["name"],
                    "service_account_namespace": claims["namespace"],
                    "service_account_secret_name": claims["secret"], "service_account_uid": claims["uid"]}
        alias = claims["uid"] if role["alias_name_source"] == "serviceaccount_uid" else (
            f"{claims['namespace']}/{claims['name']}")
        entity = self.entities.setdefault(alias, str(uuid.uuid4()))
        auth = issue_login_token(req, role, display_name=f"{self.mount.path[5:-1].replace('/', '-')}-{claims['namespace']}-{claims['name']}",
                                 metadata=metadata, entity_id=entity)
        return Response(auth=auth)

    def _verified_payload(self, token: str, role: dict[str, Any]) -> dict[str, Any]:
        assert self.config is not None
        options = {"verify_signature": False, "verify_aud": False, "verify_exp": False}
        try:
            payload = jwt.decode(token, options=options)
        except jwt.PyJWTError:
            raise permission_denied() from None
        if self.config["pem_keys"]:
            for pem in self.config["pem_keys"]:
                try:
                    jwt.decode(token, _public_pem(pem), algorithms=["RS256", "ES256", "ES384", "RS384", "RS512", "ES512"],
                               options={"verify_aud": False, "verify_exp": False})
                    break
                except (jwt.PyJWTError, ValueError):
                    continue
            else:
                raise permission_denied()
        if "exp" in payload and time.time() >= float(payload["exp"]):
            raise permission_denied()
        if not self.config["disable_iss_validation"]:
            issuer = self.config["issuer"] or DEFAULT_ISSUER
            if payload.get("iss") != issuer:
                raise VaultError(403, "invalid issuer (iss) claim")
        if role["audience"]:
            audience = payload.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if role["audience"] not in audiences:
                raise VaultError(403, "invalid audience (aud) claim: audience claim does not match any expected audience")
        return payload
