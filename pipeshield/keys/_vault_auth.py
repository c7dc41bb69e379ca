"""How ``VaultTransitKeyProvider`` gets a Vault token: a given token, or a login (AppRole, Kubernetes, JWT).

Login methods re-read their secret id / JWT file at every login (Kubernetes rotates projected tokens),
so a re-login after expiry picks up fresh credentials. Nothing here puts a secret in a message or repr.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any

import hvac

from pipeshield.config import Settings
from pipeshield.errors import ConfigError

KUBERNETES_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclasses.dataclass(frozen=True)
class LoginResult:
    token: str = dataclasses.field(repr=False)
    lease_duration: int  # seconds; 0 = does not expire


class VaultAuth(abc.ABC):
    """One way to obtain a token."""

    method: str = "abstract"
    #: a token obtained by login can be obtained again after it expires (and is revoked on close)
    can_relogin: bool = True

    @abc.abstractmethod
    def login(self, client: hvac.Client) -> LoginResult:
        """Authenticate with ``client`` (raises hvac / requests errors; the provider maps them)."""

    def describe(self) -> str:
        return self.method


@dataclasses.dataclass(frozen=True)
class TokenAuth(VaultAuth):
    token: str = dataclasses.field(repr=False)
    method = "token"
    can_relogin = False

    def login(self, client: hvac.Client) -> LoginResult:
        return LoginResult(self.token, 0)


def _result(response: dict[str, Any]) -> LoginResult:
    auth = response["auth"]
    return LoginResult(auth["client_token"], int(auth.get("lease_duration") or 0))


def _read_secret_file(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


@dataclasses.dataclass(frozen=True)
class AppRoleAuth(VaultAuth):
    role_id: str
    secret_id: str | None = dataclasses.field(default=None, repr=False)
    secret_id_file: Path | None = None
    mount: str = "approle"
    method = "approle"

    def login(self, client: hvac.Client) -> LoginResult:
        secret_id = self.secret_id
        if secret_id is None and self.secret_id_file is not None:
            secret_id = _read_secret_file(self.secret_id_file, "PIPESHIELD_VAULT_SECRET_ID_FILE")
        return _result(client.auth.approle.login(self.role_id, secret_id, use_token=False, mount_point=self.mount))

    def describe(self) -> str:
        return f"approle login at auth/{self.mount}"


@dataclasses.dataclass(frozen=True)
class JWTFileAuth(VaultAuth):
    """Kubernetes (service-account token) or generic JWT/OIDC login with a JWT read from a file."""

    kind: str  # "kubernetes" or "jwt"
    role: str
    jwt_file: Path
    mount: str

    @property  # type: ignore[override]
    def method(self) -> str:
        return self.kind

    def login(self, client: hvac.Client) -> LoginResult:
        token = _read_secret_file(self.jwt_file, "PIPESHIELD_VAULT_JWT_FILE")
        if self.method == "kubernetes":
            response = client.auth.kubernetes.login(self.role, token, use_token=False, mount_point=self.mount)
        else:
            response = client.auth.jwt.jwt_login(self.role, token, use_token=False, path=self.mount)
        return _result(response)

    def describe(self) -> str:
        return f"{self.method} login as role {self.role!r} at auth/{self.mount}"


def auth_from_settings(settings: Settings) -> VaultAuth:
    """The auth method the settings describe; a missing required setting is a ``ConfigError`` naming it."""
    method = settings.vault_auth
    mount = settings.vault_auth_mount or method
    if method == "token":
        if not settings.vault_token:
            raise ConfigError("PIPESHIELD_VAULT_TOKEN", "required for token auth (or set VAULT_TOKEN)")
        return TokenAuth(settings.vault_token)
    if method == "approle":
        if not settings.vault_role_id:
            raise ConfigError("PIPESHIELD_VAULT_ROLE_ID", "required for approle auth")
        return AppRoleAuth(settings.vault_role_id, settings.vault_secret_id, settings.vault_secret_id_file, mount)
    if not settings.vault_role:
        raise ConfigError("PIPESHIELD_VAULT_ROLE", f"required for {method} auth")
    jwt_file = settings.vault_jwt_file
    if jwt_file is None:
        if method != "kubernetes":
            raise ConfigError("PIPESHIELD_VAULT_JWT_FILE", "required for jwt auth")
        jwt_file = KUBERNETES_TOKEN_FILE
    return JWTFileAuth(method, settings.vault_role, jwt_file, mount)
