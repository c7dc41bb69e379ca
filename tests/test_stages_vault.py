"""Per-stage identity against Vault (the emulator, ACLs enforced): apply, access matrix, sessions, hook."""

from __future__ import annotations

import dataclasses
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest

from pipeshield.errors import AuthenticationError, PermissionDeniedError, StageCredentialsError
from pipeshield.keys import KeyProvider
from pipeshield.stages import (
    OPERATIONS,
    StageKeyProvider,
    env_prefix,
    open_stage_provider,
    parse_manifest,
    revoke_stage_sessions,
    stage_settings,
)
from pipeshield.stages._apply import apply_manifest
from tests.fixtures.stages import AES_KEYS, DIGEST, SIGNING_KEY, Deployment, manifest_text

CALLS: dict[str, Callable[[KeyProvider, str, Deployment], Any]] = {
    "datakey": lambda p, key, d: p.generate_data_key(key),
    "decrypt": lambda p, key, d: p.unwrap(key, d.wrapped[key]),
    "encrypt": lambda p, key, d: p.encrypt(key, b"value"),
    "rewrap": lambda p, key, d: p.rewrap(key, d.wrapped[key]),
    "hmac": lambda p, key, d: p.hmac(key, b"value"),
    "sign": lambda p, key, d: p.sign_digest(key, DIGEST),
    "verify": lambda p, key, d: p.verify_digest(key, DIGEST, d.signature),
    "read": lambda p, key, d: p.key_info(key),
}
PAIRS = [(op, key) for key in AES_KEYS for op in ("datakey", "decrypt", "encrypt", "rewrap", "hmac", "read")] + [
    (op, SIGNING_KEY) for op in ("sign", "verify", "read")]


def test_apply_writes_policies_roles_and_private_credentials(stage_deployment: Deployment) -> None:
    client = stage_deployment.vault.client()
    for stage in stage_deployment.manifest.stages.values():
        policy = client.sys.read_acl_policy(stage.policy)["data"]["policy"]
        assert f"{stage_deployment.manifest.vault.transit_mount}/" in policy
        role = client.auth.approle.read_role(stage.approle.role, mount_point=stage_deployment.approle_mount)["data"]
        assert role["token_policies"] == [stage.policy] and role["token_ttl"] == stage.token_ttl
        for suffix in ("role-id", "secret-id"):
            assert stat.S_IMODE((stage_deployment.credentials / f"{stage.name}.{suffix}").stat().st_mode) == 0o600
    assert stat.S_IMODE(stage_deployment.credentials.stat().st_mode) == 0o700
    # apply is idempotent
    apply_manifest(client, stage_deployment.manifest)


@pytest.mark.parametrize("stage", ["validate", "train", "register", "deploy", "serve"])
def test_access_matrix(stage_deployment: Deployment, stage: str) -> None:
    """Every Transit operation on every key succeeds exactly when the manifest allows it."""
    spec = stage_deployment.manifest.stage(stage)
    provider = stage_deployment.provider(stage)
    assert isinstance(provider, StageKeyProvider)
    outcomes = {}
    for operation, key in PAIRS:
        try:
            CALLS[operation](provider, key, stage_deployment)
            outcomes[(operation, key)] = True
        except PermissionDeniedError as exc:
            outcomes[(operation, key)] = False
            message = str(exc)
            assert f"stage {stage!r}" in message and f"{stage_deployment.manifest.vault.transit_mount}/" in message
            assert exc.stage == stage and exc.operation and exc.path.endswith(key)
    expected = {(op, key): spec.allows(op, key) for op, key in PAIRS}
    assert outcomes == expected
    assert set(OPERATIONS) == {op for op, _ in PAIRS}


def test_denial_names_stage_operation_and_path(stage_deployment: Deployment) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        stage_deployment.provider("train").sign_digest(SIGNING_KEY, DIGEST)
    mount = stage_deployment.manifest.vault.transit_mount
    assert str(caught.value) == f"permission denied: stage 'train' may not sign on '{mount}/sign/{SIGNING_KEY}'"
    with pytest.raises(PermissionDeniedError, match=r"stage 'deploy' may not generate a data key on .*/datakey/"):
        stage_deployment.provider("deploy").generate_data_key("pipeshield-models")


def _stage_client(stage_deployment: Deployment, stage: str) -> hvac.Client:
    env = stage_deployment.approle_env(stage)
    prefix = env_prefix(stage)
    client = hvac.Client(stage_deployment.vault.address, token="")
    client.auth.approle.login(env[prefix + "ROLE_ID"], Path(env[prefix + "SECRET_ID_FILE"]).read_text().strip(),
                              mount_point=stage_deployment.approle_mount)
    return client


def test_no_stage_can_read_another_stages_approle_credentials(stage_deployment: Deployment) -> None:
    stages = list(stage_deployment.manifest.stages.values())
    for stage in stages:
        client = _stage_client(stage_deployment, stage.name)
        for other in stages:
            with pytest.raises(hvac.exceptions.Forbidden):
                client.auth.approle.generate_secret_id(other.approle.role, mount_point=stage_deployment.approle_mount)
            with pytest.raises(hvac.exceptions.Forbidden):
                client.auth.approle.read_role_id(other.approle.role, mount_point=stage_deployment.approle_mount)
        client.auth.token.revoke_self()


def test_kv_paths_follow_the_manifest(stage_deployment: Deployment) -> None:
    train = _stage_client(stage_deployment, "train")
    assert train.secrets.kv.v2.read_secret_version("pipeshield/train/config", raise_on_deleted_version=True)[
        "data"]["data"] == {"epochs": "3"}
    with pytest.raises(hvac.exceptions.Forbidden):
        train.secrets.kv.v2.create_or_update_secret("pipeshield/train/config", {"epochs": "9"})
    with pytest.raises(hvac.exceptions.Forbidden):
        _stage_client(stage_deployment, "validate").secrets.kv.v2.read_secret_version(
            "pipeshield/train/config", raise_on_deleted_version=True)


def test_kubernetes_login_binds_each_stage_to_its_service_account(stage_deployment: Deployment, k8s_jwt_issuer,
                                                                  tmp_path: Path) -> None:
    manifest = stage_deployment.manifest
    sessions = {}
    for name in ("train", "deploy"):
        k8s = manifest.stage(name).kubernetes
        jwt_file = tmp_path / f"{name}.jwt"
        jwt_file.write_text(k8s_jwt_issuer.issue(k8s.namespace, k8s.service_account))
        env = {env_prefix(name) + "AUTH": "kubernetes", env_prefix(name) + "JWT_FILE": str(jwt_file)}
        provider = open_stage_provider(stage_settings(stage_deployment.base_settings(), name, manifest, environ=env))
        sessions[name] = provider.identity
    assert sessions["train"].policies == ("default", manifest.stage("train").policy)
    assert sessions["deploy"].policies == ("default", manifest.stage("deploy").policy)
    # the train pod's JWT cannot log in as deploy
    env = {env_prefix("deploy") + "AUTH": "kubernetes", env_prefix("deploy") + "JWT_FILE": str(tmp_path / "train.jwt"),
           env_prefix("deploy") + "ROLE": manifest.stage("deploy").kubernetes.role}
    revoke_stage_sessions()
    with pytest.raises(AuthenticationError, match="stage 'deploy'.*kubernetes"):
        open_stage_provider(stage_settings(stage_deployment.base_settings(), "deploy", manifest, environ=env))


def test_sessions_are_cached_per_stage_and_revoked(stage_deployment: Deployment) -> None:
    train1, train2, deploy = stage_deployment.provider("train"), stage_deployment.provider("train"), stage_deployment.provider("deploy")
    assert train1.identity.accessor == train2.identity.accessor != deploy.identity.accessor
    assert train1.identity.policies != deploy.identity.policies
    train1.close()  # closing a borrowed provider keeps the stage session
    train2.generate_data_key("pipeshield-data")
    revoked = revoke_stage_sessions()
    assert {i.accessor for i in revoked} == {train1.identity.accessor, deploy.identity.accessor}
    root = stage_deployment.vault.client()
    for identity in revoked:
        with pytest.raises(hvac.exceptions.VaultError):
            root.auth.token.lookup_accessor(identity.accessor)
    assert stage_deployment.provider("train").identity.accessor != train1.identity.accessor  # a fresh login


def _short_lived(stage_deployment: Deployment, tmp_path: Path, ttl: int, max_ttl: int) -> KeyProvider:
    def tweak(document: dict[str, Any]) -> None:
        document["stages"]["train"].update(token_ttl=ttl, token_max_ttl=max_ttl)
    manifest = parse_manifest(manifest_text(dict(vars(stage_deployment.manifest.vault)), tweak))
    apply_manifest(stage_deployment.vault.client(), manifest)
    try:
        return open_stage_provider(stage_settings(stage_deployment.base_settings(), "train", manifest,
                                                  environ=stage_deployment.approle_env("train")))
    finally:
        apply_manifest(stage_deployment.vault.client(), stage_deployment.manifest)  # restore the module's roles


def test_token_is_renewed_when_two_thirds_of_its_ttl_have_passed(stage_deployment: Deployment, tmp_path: Path) -> None:
    provider = _short_lived(stage_deployment, tmp_path, ttl=6, max_ttl=60)
    accessor = provider.identity.accessor
    time.sleep(4.2)
    provider.generate_data_key("pipeshield-data")
    assert provider.identity.accessor == accessor
    lookup = stage_deployment.vault.client().auth.token.lookup_accessor(accessor)["data"]
    assert lookup["ttl"] >= 3  # renewed: a fresh 6 s lease, not the 1.8 s that was left


def test_token_past_its_max_ttl_is_replaced_by_a_new_login(stage_deployment: Deployment, tmp_path: Path) -> None:
    provider = _short_lived(stage_deployment, tmp_path, ttl=6, max_ttl=6)
    accessor = provider.identity.accessor
    time.sleep(4.2)
    provider.generate_data_key("pipeshield-data")
    assert provider.identity.accessor != accessor


def test_a_stage_never_falls_back_to_the_shared_token(stage_deployment: Deployment) -> None:
    shared = dataclasses.replace(stage_deployment.base_settings(), vault_token=stage_deployment.vault.root_token)
    with pytest.raises(StageCredentialsError, match="PIPESHIELD_STAGE_TRAIN_ROLE_ID.*never uses a shared token"):
        stage_settings(shared, "train", stage_deployment.manifest, environ={})
    settings = stage_settings(shared, "train", stage_deployment.manifest, environ=stage_deployment.approle_env("train"))
    assert settings.vault_token is None and settings.vault_auth == "approle"
    assert settings.vault_auth_mount == stage_deployment.approle_mount


def test_key_provider_hook_acts_as_its_stage(stage_deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeshield.hooks.keys import KeyProviderHook

    conn = {"conn_type": "pipeshield_vault", "host": "127.0.0.1", "port": int(stage_deployment.vault.address.rsplit(":", 1)[1]),
            "schema": "http", "password": stage_deployment.vault.root_token,
            "extra": {"transit_mount": stage_deployment.manifest.vault.transit_mount,
                      "stages": {"register": {"role_id": stage_deployment.approle_env("register")[
                          env_prefix("register") + "ROLE_ID"], "secret_id_file": str(
                          stage_deployment.credentials / "register.secret-id")}}}}
    monkeypatch.setenv("AIRFLOW_CONN_PIPESHIELD_VAULT_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("PIPESHIELD_STAGE_MANIFEST", str(stage_deployment.manifest_file))
    register = KeyProviderHook(stage="register").get_provider()
    assert register.identity.policies == ("default", stage_deployment.manifest.stage("register").policy)
    register.sign_digest(SIGNING_KEY, DIGEST)
    with pytest.raises(PermissionDeniedError, match="stage 'register' may not decrypt"):
        register.unwrap("pipeshield-data", stage_deployment.wrapped["pipeshield-data"])
    for name, value in stage_deployment.approle_env("deploy").items():  # environment variables work as well
        monkeypatch.setenv(name, value)
    assert KeyProviderHook(stage="deploy").get_provider().identity.policies[-1].endswith("deploy")
    with pytest.raises(StageCredentialsError, match="stage 'train'"):
        KeyProviderHook(stage="train").get_provider()  # the connection's token is never used for a stage


def test_a_worker_login_holding_another_stages_policy_is_refused(stage_deployment: Deployment) -> None:
    train, deploy = stage_deployment.manifest.stage("train"), stage_deployment.manifest.stage("deploy")
    shared = stage_deployment.vault.approle(stage_deployment.approle_mount, stage_deployment.vault.unique("shared"),
                                      [train.policy, deploy.policy])
    worker = dataclasses.replace(stage_deployment.base_settings(), vault_auth="approle", vault_role_id=shared.role_id,
                                 vault_secret_id=shared.secret_id, vault_auth_mount=stage_deployment.approle_mount)
    settings = stage_settings(worker, "train", stage_deployment.manifest, environ={})
    with pytest.raises(AuthenticationError, match=f"stage 'train'.*other stages' policies \\({deploy.policy}\\)"):
        open_stage_provider(settings, stage_deployment.manifest)
    assert shared.secret_id not in str(settings)


def test_a_vault_agent_token_file_is_used_but_never_revoked(stage_deployment: Deployment, tmp_path: Path) -> None:
    train = stage_deployment.manifest.stage("train")
    token_file = tmp_path / "agent-token"
    token_file.write_text(stage_deployment.vault.token([train.policy]) + "\n")
    settings = stage_settings(stage_deployment.base_settings(), "train", stage_deployment.manifest,
                              environ={env_prefix("train") + "TOKEN_FILE": str(token_file)})
    assert settings.vault_auth == "token"
    provider = open_stage_provider(settings, stage_deployment.manifest)
    provider.generate_data_key("pipeshield-data")
    accessor = provider.identity.accessor
    revoke_stage_sessions()
    lookup = stage_deployment.vault.client().auth.token.lookup_accessor(accessor)["data"]
    assert lookup["accessor"] == accessor  # the agent's token stays valid: the agent owns it
