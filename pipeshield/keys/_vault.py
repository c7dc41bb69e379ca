"""``VaultTransitKeyProvider``: the ``KeyProvider`` interface over HashiCorp Vault (or OpenBao) Transit.

Every call goes through :meth:`VaultTransitKeyProvider._call`, which

* logs in first when the auth method is a login (AppRole, Kubernetes, JWT) and the token is missing or
  about to expire, and logs in again (once) when Vault says the token is no longer valid;
* retries 5xx answers and connection errors with exponential backoff, at most ``retries`` times, each
  request bounded by ``timeout`` seconds, so a call ends within
  ``(retries + 1) * timeout + backoff * (2 ** retries - 1)`` seconds (backoff capped at 2 s per wait);
* turns Vault's answers into pipeshield errors: ``ProviderUnavailableError``, ``PermissionDeniedError``
  (naming the Vault path), ``KeyNotFoundError``, ``KeyVersionError``, ``InvalidWrappedKeyError``,
  ``UnsupportedOperationError``, ``AuthenticationError``.

There is no plaintext fallback: any failure raises. Tokens and secret ids never appear in messages or reprs.
A provider holds one session and token: use one per thread (an Airflow task is one).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from pipeshield.config import Settings
from pipeshield.errors import (
    AuthenticationError,
    InvalidWrappedKeyError,
    KeyExistsError,
    KeyNotFoundError,
    KeyProviderError,
    KeyVersionError,
    PermissionDeniedError,
    ProviderUnavailableError,
    UnsupportedOperationError,
)
from pipeshield.keys import _versioned
from pipeshield.keys._base import DataKey, KeyInfo, KeyProvider, KeyType, Signature
from pipeshield.keys._vault_auth import VaultAuth, auth_from_settings

T = TypeVar("T")
log = logging.getLogger("pipeshield.keys.vault")

_TRANSIENT_HTTP = (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway, hvac.exceptions.VaultDown)
_TRANSIENT_NET = (requests.ConnectionError, requests.Timeout)
_MAX_BACKOFF = 2.0

# (substring of Vault's 400 message, error type); first match wins
_BAD_REQUEST_RULES: tuple[tuple[str, type[KeyProviderError]], ...] = (
    ("key not found", KeyNotFoundError),
    ("could be found", KeyNotFoundError),
    ("disallowed by policy", KeyVersionError),
    ("version is too new", KeyVersionError),
    ("min decryption version", KeyVersionError),
    ("higher than the latest key version", KeyVersionError),
    ("less than the minimum encryption key version", KeyVersionError),
    ("message authentication failed", InvalidWrappedKeyError),
    ("invalid ciphertext", InvalidWrappedKeyError),
    ("invalid signature", InvalidWrappedKeyError),
    ("signature is invalid", InvalidWrappedKeyError),
    ("invalid base64 signature", InvalidWrappedKeyError),
    ("missing 'context'", InvalidWrappedKeyError),
    ("base64", InvalidWrappedKeyError),
    ("not supported for key", UnsupportedOperationError),
    ("does not support", UnsupportedOperationError),
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _messages(exc: hvac.exceptions.VaultError) -> str:
    errors = [e.strip() for e in (exc.errors or []) if isinstance(e, str)]
    text = "; ".join(e.replace("1 error occurred:\n\t* ", "").strip() for e in errors)
    return text or type(exc).__name__


class VaultTransitKeyProvider(KeyProvider):
    """Keys in a Vault Transit mount. Use as a context manager (or call :meth:`close`) to revoke login tokens."""

    name = "vault"

    def __init__(self, address: str, auth: VaultAuth, *, transit_mount: str = "transit",
                 namespace: str | None = None, timeout: float = 5.0, retries: int = 3, verify: bool = True,
                 stage: str | None = None, backoff: float = 0.1) -> None:
        self.address = address.rstrip("/")
        self.transit_mount = transit_mount.strip("/")
        self.stage = stage
        self._auth = auth
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._session = requests.Session()
        self._last_status = 0  # HTTP status of the latest answer (hvac maps e.g. 504 to UnexpectedError)
        self._session.hooks["response"].append(self._remember_status)
        self._client = hvac.Client(url=self.address, token="", namespace=namespace, timeout=timeout,
                                   verify=verify, session=self._session)
        self._client.token = ""  # never pick up VAULT_TOKEN or ~/.vault-token implicitly
        self._token_expires: float | None = None  # monotonic time; None = no expiry known
        self._renew_margin = 0.0  # log in again this many seconds before the token expires
        self._has_token = False
        self._known_keys: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultTransitKeyProvider:
        """A provider configured by ``PIPESHIELD_VAULT_*`` settings (see docs/vault.md)."""
        assert settings.vault_addr is not None
        return cls(settings.vault_addr, auth_from_settings(settings), transit_mount=settings.vault_transit_mount,
                   namespace=settings.vault_namespace, timeout=settings.vault_timeout,
                   retries=settings.vault_retries, verify=settings.vault_verify, stage=settings.stage)

    def __repr__(self) -> str:
        return (f"VaultTransitKeyProvider(address={self.address!r}, auth={self._auth.method!r}, "
                f"transit_mount={self.transit_mount!r})")

    # --- plumbing -----------------------------------------------------------------------
    def _remember_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_status = response.status_code

    def _path(self, *parts: str) -> str:
        return "/".join((self.transit_mount, *parts))

    def _with_retries(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying 5xx answers and connection errors with exponential backoff."""
        attempt = 0
        while True:
            attempt += 1
            self._last_status = 0
            try:
                try:
                    return fn()
                except hvac.exceptions.UnexpectedError as exc:
                    if self._last_status >= 500:  # 504 and other 5xx hvac has no class for
                        raise hvac.exceptions.InternalServerError(_messages(exc)) from None
                    raise
            except (*_TRANSIENT_HTTP, *_TRANSIENT_NET) as exc:
                reason = _messages(exc) if isinstance(exc, hvac.exceptions.VaultError) else type(exc).__name__
                if attempt > self._retries:
                    raise ProviderUnavailableError(
                        f"Vault at {self.address} did not answer {what} after {attempt} attempts "
                        f"(last error: {reason})"
                    ) from None
                delay = min(self._backoff * 2 ** (attempt - 1), _MAX_BACKOFF)
                log.warning("Vault %s failed (%s); retry %d of %d in %.2fs", what, reason, attempt,
                            self._retries, delay)
                time.sleep(delay)

    def _login(self) -> None:
        self._client.token = ""
        try:
            result = self._with_retries(self._auth.describe(), lambda: self._auth.login(self._client))
        except hvac.exceptions.VaultError as exc:  # 400 bad credentials, 403 refused JWT, 404 no such auth mount
            raise AuthenticationError(f"Vault {self._auth.describe()} failed: {_messages(exc)}") from None
        self._client.token = result.token
        self._has_token = True
        self._token_expires = time.monotonic() + result.lease_duration if result.lease_duration else None
        self._renew_margin = min(10.0, 0.1 * result.lease_duration)

    def _ensure_token(self) -> None:
        if not self._has_token:
            self._login()
        elif self._auth.can_relogin and self._token_expires is not None:
            if self._token_expires - time.monotonic() < self._renew_margin:  # about to expire: log in again
                self._login()

    def _token_is_valid(self) -> bool:
        try:
            self._with_retries("token lookup", self._client.auth.token.lookup_self)
        except hvac.exceptions.Forbidden:
            return False
        except hvac.exceptions.VaultError:  # any other answer means Vault knew the token
            return True
        return True

    def _call(self, path: str, operation: str, fn: Callable[[hvac.Client], T], key_name: str | None = None) -> T:
        """One Transit operation on ``path`` with login, retries and error mapping."""
        self._ensure_token()
        relogged = False
        while True:
            try:
                return self._with_retries(f"{operation} on {path}", lambda: fn(self._client))
            except hvac.exceptions.Forbidden:
                if self._token_is_valid():
                    raise PermissionDeniedError(path, operation, self.stage) from None
                if not self._auth.can_relogin:
                    raise AuthenticationError(
                        f"the Vault token was refused by {self.address}: it is invalid, expired or revoked"
                    ) from None
                if relogged:
                    raise PermissionDeniedError(path, operation, self.stage) from None
                log.info("Vault token expired or revoked; logging in again (%s)", self._auth.describe())
                self._login()
                relogged = True
            except hvac.exceptions.InvalidPath as exc:
                if exc.errors:  # a routing error, not a missing key (Vault answers those with "errors": [])
                    raise KeyProviderError(
                        f"Vault has no route for {path!r} (is Transit enabled at {self.transit_mount!r}?): "
                        f"{_messages(exc)}"
                    ) from None
                raise KeyNotFoundError(key_name or path) from None
            except hvac.exceptions.InvalidRequest as exc:
                raise self._bad_request(exc, path, key_name) from None
            except hvac.exceptions.VaultError as exc:
                raise KeyProviderError(f"Vault refused {operation} on {path!r}: {_messages(exc)}") from None

    @staticmethod
    def _bad_request(exc: hvac.exceptions.VaultError, path: str, key_name: str | None) -> KeyProviderError:
        message = _messages(exc)
        for needle, error_type in _BAD_REQUEST_RULES:
            if needle in message:
                if error_type is KeyNotFoundError:
                    return KeyNotFoundError(key_name or path)
                return error_type(f"{message} (key {key_name!r}, Vault path {path!r})")
        return KeyProviderError(f"Vault refused the request on {path!r}: {message}")

    # --- lifecycle ----------------------------------------------------------------------------
    def _read(self, name: str) -> dict[str, Any]:
        data = self._call(self._path("keys", name), "read",
                          lambda c: c.secrets.transit.read_key(name, mount_point=self.transit_mount), name)["data"]
        self._known_keys.add(name)
        return data

    @staticmethod
    def _info(name: str, data: dict[str, Any]) -> KeyInfo:
        try:
            key_type = KeyType(data["type"])
        except ValueError:
            raise UnsupportedOperationError(f"key {name!r} has type {data['type']}, which pipeshield does not use") from None
        return KeyInfo(
            name=name, type=key_type, latest_version=int(data["latest_version"]),
            min_decryption_version=int(data["min_decryption_version"]), derived=bool(data.get("derived")),
            versions=tuple(sorted(int(v) for v in (data.get("keys") or {}))),
        )

    def create_key(self, name: str, key_type: KeyType = KeyType.AES256_GCM96, *, derived: bool = False) -> KeyInfo:
        key_type = KeyType(key_type)
        if derived and not key_type.can_encrypt:
            raise UnsupportedOperationError(f"key derivation not supported for keys of type {key_type.value}")
        self._call(self._path("keys", name), "create",
                   lambda c: c.secrets.transit.create_key(name, key_type=key_type.value, derived=derived,
                                                          mount_point=self.transit_mount), name)
        info = self._info(name, self._read(name))
        if info.type is not key_type or info.derived != derived:
            raise KeyExistsError(f"key {name!r} already exists with type {info.type.value}")
        return info

    def key_info(self, name: str) -> KeyInfo:
        return self._info(name, self._read(name))

    def list_keys(self) -> list[str]:
        try:
            response = self._call(self._path("keys"), "list",
                                  lambda c: c.secrets.transit.list_keys(mount_point=self.transit_mount))
        except KeyNotFoundError:  # Vault answers 404 to an empty list
            return []
        return sorted(response["data"]["keys"])

    def rotate(self, name: str) -> KeyInfo:
        self._call(self._path("keys", name, "rotate"), "rotate",
                   lambda c: c.secrets.transit.rotate_key(name, mount_point=self.transit_mount), name)
        return self.key_info(name)

    def set_min_decryption_version(self, name: str, version: int) -> KeyInfo:
        self._call(self._path("keys", name, "config"), "configure",
                   lambda c: c.secrets.transit.update_key_configuration(
                       name, min_decryption_version=version, mount_point=self.transit_mount), name)
        return self.key_info(name)

    # --- envelope encryption ---------------------------------------------------------------
    @staticmethod
    def _context(context: bytes | None) -> str | None:
        return None if context is None else _b64(context)

    def generate_data_key(self, name: str, *, context: bytes | None = None) -> DataKey:
        path = self._path("datakey", "plaintext", name)
        data = self._call(path, "generate a data key", lambda c: c.secrets.transit.generate_data_key(
            name, key_type="plaintext", context=self._context(context), mount_point=self.transit_mount), name)["data"]
        wrapped = data["ciphertext"]
        version = int(data.get("key_version") or _versioned.decode(wrapped)[0])
        return DataKey(key_name=name, key_version=version, wrapped=wrapped, plaintext=base64.b64decode(data["plaintext"]))

    def unwrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> bytes:
        if not isinstance(wrapped, str):
            raise InvalidWrappedKeyError("invalid wrapped key: expected a string")
        data = self._call(self._path("decrypt", name), "decrypt", lambda c: c.secrets.transit.decrypt_data(
            name, wrapped, context=self._context(context), mount_point=self.transit_mount), name)["data"]
        try:
            return base64.b64decode(data["plaintext"], validate=True)
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise KeyProviderError(f"Vault returned no valid plaintext for key {name!r}") from None

    def rewrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> str:
        if not isinstance(wrapped, str):
            raise InvalidWrappedKeyError("invalid wrapped key: expected a string")
        data = self._call(self._path("rewrap", name), "rewrap", lambda c: c.secrets.transit.rewrap_data(
            name, wrapped, context=self._context(context), mount_point=self.transit_mount), name)["data"]
        return data["ciphertext"]

    def encrypt(self, name: str, plaintext: bytes, *, context: bytes | None = None) -> str:
        if name not in self._known_keys:  # Vault would silently create a missing key on encrypt; we refuse
            self._read(name)
        data = self._call(self._path("encrypt", name), "encrypt", lambda c: c.secrets.transit.encrypt_data(
            name, _b64(plaintext), context=self._context(context), mount_point=self.transit_mount), name)["data"]
        return data["ciphertext"]

    def hmac(self, name: str, data: bytes) -> str:
        response = self._call(self._path("hmac", name), "hmac", lambda c: c.secrets.transit.generate_hmac(
            name, _b64(data), algorithm="sha2-256", mount_point=self.transit_mount), name)
        return response["data"]["hmac"]

    # --- signing ------------------------------------------------------------------------------
    def sign_digest(self, name: str, digest: bytes) -> Signature:
        if len(digest) != 32:
            raise InvalidWrappedKeyError("a SHA-256 digest is 32 bytes")
        data = self._call(self._path("sign", name), "sign", lambda c: c.secrets.transit.sign_data(
            name, _b64(digest), hash_algorithm="sha2-256", prehashed=True, marshaling_algorithm="asn1",
            mount_point=self.transit_mount), name)["data"]
        encoded = data["signature"]
        version, der = _versioned.decode(encoded, "signature")
        return Signature(key_name=name, key_version=int(data.get("key_version") or version), der=der, encoded=encoded)

    def verify_digest(self, name: str, digest: bytes, signature: str) -> bool:
        if not isinstance(signature, str):
            raise InvalidWrappedKeyError("invalid signature: expected a string")
        data = self._call(self._path("verify", name), "verify", lambda c: c.secrets.transit.verify_signed_data(
            name, _b64(digest), signature=signature, hash_algorithm="sha2-256", prehashed=True,
            marshaling_algorithm="asn1", mount_point=self.transit_mount), name)["data"]
        return bool(data["valid"])

    def public_key_pem(self, name: str, version: int | None = None) -> str:
        data = self._read(name)
        if data["type"] != KeyType.ECDSA_P256.value:
            raise UnsupportedOperationError(f"key {name!r} of type {data['type']} has no public key")
        version = int(data["latest_version"]) if version is None else version
        entry = (data.get("keys") or {}).get(str(version))
        if not isinstance(entry, dict):
            raise KeyVersionError(f"key {name!r} has no version {version} (unknown or below min_decryption_version)")
        return entry["public_key"]

    # --- session ----------------------------------------------------------------------------
    def close(self) -> None:
        """Revoke a token this provider obtained by login (never a token it was given); end the session."""
        if self._has_token and self._auth.can_relogin:
            try:
                self._client.auth.token.revoke_self()
            except (hvac.exceptions.VaultError, requests.RequestException):
                log.info("could not revoke the Vault login token (it expires on its own)")
        self._client.token = ""
        self._has_token = False
        self._session.close()
