"""Stage sessions: one Vault login per stage per process, renewed while in use, revoked when the task ends.

A session logs in with the stage's own credentials (AppRole, Kubernetes service-account JWT, JWT or a
per-stage token file), hands the resulting token to a Vault Transit key provider, renews the token
when less than a third of its TTL is left (logging in again when renewal is refused), and revokes it
on :func:`revoke_stage_sessions` (called when an Airflow task ends) or at process exit.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import threading
import time
from typing import Any

import hvac
import hvac.exceptions
import requests

from pipeshield.config import Settings
from pipeshield.errors import AuthenticationError, PermissionDeniedError, ProviderUnavailableError
from pipeshield.keys import DataKey, KeyInfo, KeyProvider, KeyType, Signature, open_key_provider
from pipeshield.keys._vault import VaultTransitKeyProvider
from pipeshield.keys._vault_auth import TokenAuth, auth_from_settings
from pipeshield.stages._manifest import StageManifest


@dataclasses.dataclass(frozen=True)
class StageIdentity:
    """Who a session is in Vault: never the token itself."""

    stage: str
    auth: str
    accessor: str
    policies: tuple[str, ...]
    ttl: int


class StageSession:
    """One logged-in stage: its token (kept private), its key provider, renewal and revocation."""

    def __init__(self, settings: Settings, foreign_policies: frozenset[str] = frozenset()) -> None:
        if settings.stage is None or not settings.vault_addr:
            raise ValueError("a stage session needs a stage and a Vault address")
        self.settings = settings
        self._foreign = foreign_policies
        self._auth = auth_from_settings(settings)
        self._lock = threading.Lock()
        # no token yet; never pick up VAULT_TOKEN or ~/.vault-token: a stage logs in as itself
        self._client = hvac.Client(url=settings.vault_addr, token="", namespace=settings.vault_namespace,  # nosec B106
                                   verify=settings.vault_verify, timeout=settings.vault_timeout)
        self._client.token = ""  # nosec B105
        self._provider: KeyProvider | None = None
        self._renew_at = float("inf")
        self.identity = self._login()

    # --- public --------------------------------------------------------------
    def provider(self) -> KeyProvider:
        """The key provider acting with this stage's token, renewed (or re-logged in) when due."""
        with self._lock:
            if self._provider is None:
                raise AuthenticationError(f"stage {self.settings.stage!r}: the session was revoked")
            if time.monotonic() >= self._renew_at:
                self._renew()
            return self._provider

    def revoke(self) -> None:
        """Revoke a token this session logged in for (a given per-stage token belongs to its Vault Agent)."""
        with self._lock:
            provider, self._provider = self._provider, None
            if provider is None:
                return
            try:
                if self._auth.can_relogin:
                    self._client.auth.token.revoke_self()
            except (hvac.exceptions.VaultError, requests.RequestException):
                pass  # an expired token is already unusable
            finally:
                self._client.token = None
                provider.close()

    # --- internals -----------------------------------------------------------
    def _login(self) -> StageIdentity:
        settings = self.settings
        try:
            token = self._auth.login(self._client).token
            self._client.token = token
            data = self._client.auth.token.lookup_self()["data"]
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath,
                hvac.exceptions.Unauthorized) as exc:
            raise AuthenticationError(
                f"stage {settings.stage!r}: Vault {self._auth.describe()} refused ({_reason(exc)})") from None
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise ProviderUnavailableError(
                f"Vault at {settings.vault_addr} failed the {self._auth.describe()}: {exc.__class__.__name__}") from None
        shared = sorted(self._foreign & set(data.get("policies") or ()))
        if shared:
            with contextlib.suppress(hvac.exceptions.VaultError, requests.RequestException):
                if self._auth.can_relogin:
                    self._client.auth.token.revoke_self()
            raise AuthenticationError(f"stage {settings.stage!r}: the Vault identity ({self._auth.describe()}) also "
                                      f"holds other stages' policies ({', '.join(shared)}); refusing a shared identity")
        ttl = int(data.get("ttl") or 0)
        self._renew_at = time.monotonic() + ttl * 2 / 3 if ttl and self._auth.can_relogin else float("inf")
        self._provider = VaultTransitKeyProvider(
            settings.vault_addr or "", TokenAuth(token), transit_mount=settings.vault_transit_mount,
            namespace=settings.vault_namespace, timeout=settings.vault_timeout, retries=settings.vault_retries,
            verify=settings.vault_verify, stage=settings.stage)
        return StageIdentity(settings.stage or "", self._auth.method, data["accessor"],
                             tuple(sorted(data.get("policies") or ())), ttl)

    def _renew(self) -> None:
        try:
            ttl = int(self._client.auth.token.renew_self()["auth"]["lease_duration"])
        except (hvac.exceptions.VaultError, requests.RequestException, KeyError, TypeError):
            ttl = 0
        if ttl >= max(1, self.identity.ttl // 3):
            self._renew_at = time.monotonic() + ttl * 2 / 3
            self.identity = dataclasses.replace(self.identity, ttl=ttl)
            return
        # renewal refused or capped by token_max_ttl: revoke what is left and log in again
        old = self._provider
        with contextlib.suppress(hvac.exceptions.VaultError, requests.RequestException):
            self._client.auth.token.revoke_self()
        self.identity = self._login()
        if old is not None:
            old.close()


def _reason(exc: hvac.exceptions.VaultError) -> str:
    errors = getattr(exc, "errors", None) or []
    text = "; ".join(str(e) for e in errors) or exc.__class__.__name__
    return text.replace("1 error occurred:", "").replace("\n", " ").replace("\t", "").replace("*", "").strip()


class StageSessions:
    """The sessions of this process, keyed by stage and Vault identity."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[Any, ...], StageSession] = {}

    def session(self, settings: Settings, foreign_policies: frozenset[str] = frozenset()) -> StageSession:
        key = (settings.stage, settings.vault_addr, settings.vault_namespace, settings.vault_auth,
               settings.vault_auth_mount, settings.vault_role_id, settings.vault_role, settings.vault_transit_mount)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = StageSession(settings, foreign_policies)
            return session

    def revoke_all(self) -> list[StageIdentity]:
        """Revoke every session's token; returns who was revoked."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.revoke()
        return [session.identity for session in sessions]


SESSIONS = StageSessions()
atexit.register(SESSIONS.revoke_all)


def revoke_stage_sessions() -> list[StageIdentity]:
    """Revoke every stage token this process holds (call when a task ends)."""
    return SESSIONS.revoke_all()


def open_stage_provider(settings: Settings, manifest: StageManifest | None = None) -> KeyProvider:
    """The key provider for ``settings.stage`` (from :func:`stage_settings`): cached, renewed, stage-named errors.

    With ``manifest``, a login whose token carries another stage's policy is refused."""
    if settings.key_provider != "vault" or settings.stage is None:
        return open_key_provider(settings)
    foreign = frozenset(s.policy for s in manifest.stages.values() if s.name != settings.stage) if manifest else frozenset()
    return StageKeyProvider(SESSIONS.session(settings, foreign))


class StageKeyProvider(KeyProvider):
    """A Vault key provider bound to a stage session. ``close()`` keeps the session (revoked at task end)."""

    name = "vault"

    def __init__(self, session: StageSession) -> None:
        self.session = session
        self.stage = session.settings.stage

    @property
    def identity(self) -> StageIdentity:
        return self.session.identity

    def __repr__(self) -> str:
        return f"StageKeyProvider(stage={self.stage!r}, address={self.session.settings.vault_addr!r})"

    def _call(self, operation: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.session.provider(), method)(*args, **kwargs)
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(exc.path, exc.operation or operation, self.stage) from None

    def create_key(self, name: str, key_type: KeyType = KeyType.AES256_GCM96, *, derived: bool = False) -> KeyInfo:
        return self._call("create-key", "create_key", name, key_type, derived=derived)

    def key_info(self, name: str) -> KeyInfo:
        return self._call("read", "key_info", name)

    def list_keys(self) -> list[str]:
        return self._call("list", "list_keys")

    def rotate(self, name: str) -> KeyInfo:
        return self._call("rotate", "rotate", name)

    def set_min_decryption_version(self, name: str, version: int) -> KeyInfo:
        return self._call("config", "set_min_decryption_version", name, version)

    def generate_data_key(self, name: str, *, context: bytes | None = None) -> DataKey:
        return self._call("datakey", "generate_data_key", name, context=context)

    def unwrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> bytes:
        return self._call("decrypt", "unwrap", name, wrapped, context=context)

    def rewrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> str:
        return self._call("rewrap", "rewrap", name, wrapped, context=context)

    def encrypt(self, name: str, plaintext: bytes, *, context: bytes | None = None) -> str:
        return self._call("encrypt", "encrypt", name, plaintext, context=context)

    def hmac(self, name: str, data: bytes) -> str:
        return self._call("hmac", "hmac", name, data)

    def sign_digest(self, name: str, digest: bytes) -> Signature:
        return self._call("sign", "sign_digest", name, digest)

    def verify_digest(self, name: str, digest: bytes, signature: str) -> bool:
        return self._call("verify", "verify_digest", name, digest, signature)

    def public_key_pem(self, name: str, version: int | None = None) -> str:
        return self._call("read", "public_key_pem", name, version)
