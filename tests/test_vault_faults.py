"""Faults around ``VaultTransitKeyProvider``: expired tokens, unreachable Vault, 5xx answers, denied paths,
bad credentials. 5xx answers come from the outage proxy (``tests.fixtures.outage_proxy``) in front of the Vault under test."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeshield.config import Settings
from pipeshield.errors import (
    AuthenticationError,
    KeyNotFoundError,
    KeyProviderError,
    PermissionDeniedError,
    ProviderUnavailableError,
)
from pipeshield.keys import KeyType, VaultTransitKeyProvider, open_key_provider
from pipeshield.keys._vault_auth import AppRoleAuth, JWTFileAuth, TokenAuth
from tests.fixtures.outage_proxy import Injection, OutageProxy
from tests.fixtures.processes import free_port
from tests.fixtures.vault import AppRoleCredentials, VaultServer
from tests.vault_emulator import KubernetesJWTIssuer

VAULT_INTERNAL_ERROR = b'{"errors":["1 error occurred:\\n\\t* internal error\\n\\n"]}\n'


def vault_errors(status_for: Callable[[str, str], int | None]) -> Injection:
    """Answer with Vault's internal-error body at the status ``status_for(method, path)`` gives, if any."""
    def injection(method: str, path: str) -> tuple[int, bytes] | None:
        status = status_for(method, path)
        return None if status is None else (status, VAULT_INTERNAL_ERROR)
    return injection


@pytest.fixture(scope="module")
def transit(vault: VaultServer) -> str:
    return vault.enable_transit("faults")


@pytest.fixture
def proxy(vault: VaultServer, outage_proxy: Callable[[str], OutageProxy]) -> OutageProxy:
    return outage_proxy(vault.address)


def _stage_role(vault: VaultServer, transit: str, key: str, **role: object) -> AppRoleCredentials:
    """An AppRole allowed to make and open data keys under ``key`` only."""
    policy = vault.write_policy("stage", f"""
path "{transit}/keys/{key}" {{ capabilities = ["read"] }}
path "{transit}/datakey/plaintext/{key}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/{key}" {{ capabilities = ["update"] }}
""")
    return vault.approle(vault.enable_approle(), "stage", [policy], **role)


@pytest.mark.reliability("fault", "Vault login token expires mid-run",
                         "one transparent re-login; the operation succeeds")
def test_expired_login_token_is_replaced_transparently(vault: VaultServer, transit: str, proxy: OutageProxy) -> None:
    key = vault.unique("exp")
    VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token), transit_mount=transit).create_key(key)
    creds = _stage_role(vault, transit, key, token_ttl="2s", token_max_ttl="2s")
    with VaultTransitKeyProvider(proxy.url, AppRoleAuth(creds.role_id, creds.secret_id, mount=creds.mount),
                                 transit_mount=transit) as provider:
        data_key = provider.generate_data_key(key)
        first_token = provider._client.token
        deadline = time.monotonic() + 10
        while vault.client(first_token).is_authenticated():  # wait until Vault itself expired the token
            assert time.monotonic() < deadline, "a 2s token outlived 10s"
            time.sleep(0.1)
        assert provider.unwrap(key, data_key.wrapped) == data_key.plaintext
    assert proxy.count(f"/v1/auth/{creds.mount}/login") == 2


@pytest.mark.reliability("fault", "Vault login token revoked mid-run",
                         "one re-login; the refused call is retried once and served")
def test_revoked_login_token_triggers_one_relogin(vault: VaultServer, transit: str, proxy: OutageProxy) -> None:
    key = vault.unique("revoked")
    VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token), transit_mount=transit).create_key(key)
    creds = _stage_role(vault, transit, key)
    with VaultTransitKeyProvider(proxy.url, AppRoleAuth(creds.role_id, creds.secret_id, mount=creds.mount),
                                 transit_mount=transit) as provider:
        data_key = provider.generate_data_key(key)
        vault.client().auth.token.revoke(provider._client.token)  # e.g. an operator revoked the lease
        assert provider.unwrap(key, data_key.wrapped) == data_key.plaintext
    assert proxy.count(f"/v1/auth/{creds.mount}/login") == 2
    assert proxy.count(f"/v1/{transit}/decrypt/{key}") == 2  # refused once, then served


@pytest.mark.reliability("fault", "Vault unreachable (closed port)",
                         "ProviderUnavailableError after 3 bounded retries; no token in the message")
def test_unreachable_vault_fails_after_bounded_retries(caplog: pytest.LogCaptureFixture, reliability) -> None:
    closed = free_port()
    settings = Settings.load({"PIPESHIELD_VAULT_ADDR": f"http://127.0.0.1:{closed}", "PIPESHIELD_VAULT_TOKEN": "hvs.x",
                              "PIPESHIELD_VAULT_RETRIES": "3", "PIPESHIELD_VAULT_TIMEOUT": "2"})
    provider = open_key_provider(settings)
    assert isinstance(provider, VaultTransitKeyProvider)
    with caplog.at_level(logging.WARNING, logger="pipeshield.keys.vault"):
        with pytest.raises(ProviderUnavailableError) as info:
            provider.generate_data_key("pipeshield-data")
    assert "after 4 attempts" in str(info.value)
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert [r.getMessage().split("retry ")[1][:6] for r in retries] == ["1 of 3", "2 of 3", "3 of 3"]
    assert "hvs.x" not in str(info.value)
    reliability(observed=f"{type(info.value).__name__}: {info.value}")


@pytest.mark.reliability("fault", "Vault answers 500, 502, 503, 504, then recovers",
                         "retried with backoff, then served")
def test_server_errors_are_retried_then_succeed(vault: VaultServer, transit: str, proxy: OutageProxy) -> None:
    key = vault.unique("flaky")
    failures = iter([500, 502, 503, 504])
    proxy.answer_on(vault_errors(lambda method, path: next(failures, None) if "/datakey/" in path else None))
    with VaultTransitKeyProvider(proxy.url, TokenAuth(vault.root_token), transit_mount=transit, retries=4,
                                 backoff=0.01) as provider:
        provider.create_key(key)
        data_key = provider.generate_data_key(key)
        assert provider.unwrap(key, data_key.wrapped) == data_key.plaintext
    assert [status for _, path, status in proxy.requests if "/datakey/" in path] == [500, 502, 503, 504, 200]


@pytest.mark.reliability("fault", "Vault keeps answering 500",
                         "ProviderUnavailableError after 3 attempts naming Vault's error")
def test_persistent_server_errors_give_a_clear_error(vault: VaultServer, transit: str, proxy: OutageProxy,
                                                    reliability) -> None:
    key = vault.unique("down")
    proxy.answer_on(vault_errors(lambda method, path: 500 if "/datakey/" in path else None))
    with VaultTransitKeyProvider(proxy.url, TokenAuth(vault.root_token), transit_mount=transit, retries=2,
                                 backoff=0.01) as provider:
        provider.create_key(key)
        with pytest.raises(ProviderUnavailableError, match="after 3 attempts.*internal error") as info:
            provider.generate_data_key(key)
    assert proxy.count("/datakey/") == 3
    reliability(observed=f"{type(info.value).__name__}: {info.value}")


@pytest.mark.reliability("fault", "Vault policy lacks the path",
                         "PermissionDeniedError naming the path and the stage")
def test_permission_denied_names_the_path_and_stage(vault: VaultServer, transit: str, reliability) -> None:
    allowed, other = vault.unique("mine"), vault.unique("theirs")
    with VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token), transit_mount=transit) as admin:
        admin.create_key(allowed)
        admin.create_key(other)
        foreign = admin.generate_data_key(other).wrapped
    creds = _stage_role(vault, transit, allowed)
    with VaultTransitKeyProvider(vault.address, AppRoleAuth(creds.role_id, creds.secret_id, mount=creds.mount),
                                 transit_mount=transit, stage="train") as provider:
        provider.generate_data_key(allowed)
        with pytest.raises(PermissionDeniedError) as info:
            provider.unwrap(other, foreign)
    assert info.value.path == f"{transit}/decrypt/{other}" and info.value.stage == "train"
    assert f"{transit}/decrypt/{other}" in str(info.value) and "train" in str(info.value)
    assert creds.secret_id not in str(info.value)
    reliability(observed=f"{type(info.value).__name__}: {info.value}")


@pytest.mark.reliability("fault", "wrong AppRole secret id, revoked token",
                         "AuthenticationError; the secret is in no message or repr")
def test_bad_credentials_are_an_authentication_error(vault: VaultServer, transit: str) -> None:
    creds = _stage_role(vault, transit, "unused")
    wrong = VaultTransitKeyProvider(vault.address, AppRoleAuth(creds.role_id, "not-the-secret", mount=creds.mount),
                                    transit_mount=transit)
    with pytest.raises(AuthenticationError, match="invalid role or secret ID") as info:
        wrong.list_keys()
    assert "not-the-secret" not in str(info.value) and "not-the-secret" not in repr(wrong)
    revoked = vault.token(["default"])
    vault.client().auth.token.revoke(revoked)
    with pytest.raises(AuthenticationError, match="invalid, expired or revoked") as info:
        VaultTransitKeyProvider(vault.address, TokenAuth(revoked), transit_mount=transit).list_keys()
    assert revoked not in str(info.value)


def test_close_revokes_login_tokens_but_not_given_tokens(vault: VaultServer, transit: str) -> None:
    creds = _stage_role(vault, transit, vault.unique("close"))
    provider = VaultTransitKeyProvider(vault.address, AppRoleAuth(creds.role_id, creds.secret_id, mount=creds.mount),
                                       transit_mount=transit)
    with pytest.raises(PermissionDeniedError):
        provider.list_keys()  # logs in; listing is not in the stage policy
    login_token = provider._client.token
    provider.close()
    assert not vault.client(login_token).is_authenticated()
    given = vault.token(["default"])
    with VaultTransitKeyProvider(vault.address, TokenAuth(given), transit_mount=transit) as user_provider:
        with pytest.raises(PermissionDeniedError):
            user_provider.list_keys()
    assert vault.client(given).is_authenticated()


def test_approle_secret_id_from_file_and_settings(vault: VaultServer, transit: str, tmp_path: Path) -> None:
    key = vault.unique("file")
    VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token), transit_mount=transit).create_key(key)
    creds = _stage_role(vault, transit, key)
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(creds.secret_id + "\n")
    env = vault.approle_env(creds, transit, stage="train")
    del env["PIPESHIELD_VAULT_SECRET_ID"]
    settings = Settings.load({**env, "PIPESHIELD_VAULT_SECRET_ID_FILE": str(secret_file)})
    with open_key_provider(settings) as provider:
        data_key = provider.generate_data_key(key)
        assert provider.unwrap(key, data_key.wrapped) == data_key.plaintext
        assert creds.secret_id not in repr(provider)


@pytest.mark.parametrize("method", ["kubernetes", "jwt"])
def test_jwt_file_logins(vault: VaultServer, transit: str, tmp_path: Path,
                         k8s_jwt_issuer: KubernetesJWTIssuer, method: str) -> None:
    if not vault.is_emulator:
        pytest.skip("needs the emulator (a real Vault would call a Kubernetes TokenReview API)")
    # The spec's subset has no JWT/OIDC method; JWT login posts the same {role, jwt} body to
    # auth/<mount>/login, so a Kubernetes mount stands in for it on the wire.
    key = vault.unique("sa")
    VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token), transit_mount=transit).create_key(
        key, KeyType.ECDSA_P256)
    mount = vault.enable_kubernetes(k8s_jwt_issuer, prefix=method)
    policy = vault.write_policy("sign", f'path "{transit}/sign/{key}" {{ capabilities = ["update"] }}')
    vault.kubernetes_role(mount, "deploy", [policy], namespaces=["ml"], service_accounts=["deploy"])
    jwt_file = tmp_path / "token"
    jwt_file.write_text(k8s_jwt_issuer.issue("ml", "deploy"))
    with VaultTransitKeyProvider(vault.address, JWTFileAuth(method, "deploy", jwt_file, mount),
                                 transit_mount=transit) as provider:
        assert provider.sign_digest(key, b"\x00" * 32).key_version == 1
    jwt_file.write_text(k8s_jwt_issuer.issue("other-namespace", "deploy"))
    with pytest.raises(AuthenticationError, match="namespace not authorized"):
        VaultTransitKeyProvider(vault.address, JWTFileAuth(method, "deploy", jwt_file, mount),
                                transit_mount=transit).sign_digest(key, b"\x00" * 32)


@pytest.mark.reliability("fault", "Transit not enabled at the configured mount",
                         "KeyProviderError naming the mount")
def test_wrong_transit_mount_is_named(vault: VaultServer) -> None:
    with VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token),
                                 transit_mount=vault.unique("not-mounted")) as provider:
        with pytest.raises(KeyProviderError, match="is Transit enabled at") as info:
            provider.generate_data_key("pipeshield-data")
    assert not isinstance(info.value, KeyNotFoundError)


@pytest.mark.reliability("fault", "auth method not enabled at the configured mount",
                         "AuthenticationError naming the mount")
def test_missing_auth_mount_is_an_authentication_error(vault: VaultServer, transit: str) -> None:
    auth = AppRoleAuth("role", "secret", mount=vault.unique("no-such-approle"))
    with pytest.raises(AuthenticationError, match="approle login at auth/no-such-approle"):
        VaultTransitKeyProvider(vault.address, auth, transit_mount=transit).list_keys()
