"""An emulator of the HashiCorp Vault HTTP API subset in ``../shared/reference/vault-api.md``, for tests.

It exists only because no Vault or OpenBao binary can be installed where the tests run. It serves real
HTTP on 127.0.0.1 (random port) so ``hvac`` is exercised unmodified, and it implements Vault's formats,
status codes and ACL rules and nothing beyond the spec. Never imported by ``pipeshield``.

>>> with VaultEmulator() as vault:
...     client = hvac.Client(vault.address, token=vault.root_token)

``token_reviewer(jwt, kubernetes_config) -> bool`` stands in for the Kubernetes TokenReview API that
Vault's Kubernetes auth method calls at login (default: accept every token).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from tests.vault_emulator._core import Core
from tests.vault_emulator._server import HTTPServerThread
from tests.vault_emulator.k8s_jwt import KubernetesJWTIssuer

__all__ = ["KubernetesJWTIssuer", "VaultEmulator"]


class VaultEmulator:
    """A running emulated Vault: ``address``, ``root_token``; like ``vault server -dev`` (KV v2 at ``secret/``)."""

    def __init__(self, root_token: str | None = None, *, dev_kv: bool = True,
                 token_reviewer: Callable[[str, dict[str, Any]], bool] | None = None) -> None:
        self.root_token = root_token or "hvs." + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")
        self.core = Core(self.root_token, token_reviewer)
        if dev_kv:
            from tests.vault_emulator._kv import KVBackend

            self.core.mount("secret/", "kv", KVBackend, description="key/value secret storage", options={"version": "2"})
        self._http = HTTPServerThread(self.core)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self._http.port}"

    @property
    def token_reviewer(self) -> Callable[[str, dict[str, Any]], bool]:
        return self.core.token_reviewer

    @token_reviewer.setter
    def token_reviewer(self, reviewer: Callable[[str, dict[str, Any]], bool]) -> None:
        self.core.token_reviewer = reviewer

    def start(self) -> VaultEmulator:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> VaultEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
