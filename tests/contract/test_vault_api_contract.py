"""The Vault HTTP API as pipeshield relies on it, driven with real ``hvac`` calls over HTTP.

Runs against the emulator by default and against a real Vault/OpenBao when VAULT_ADDR/VAULT_TOKEN are set
(see docs/vault.md). Assertions follow ../shared/reference/vault-api.md §6: status codes, documented keys
and formats, error *substrings*; never exact multierror text or the absence of extra keys. The few cases
that need the emulator (Kubernetes TokenReview) are marked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable

import hvac
import hvac.exceptions
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.fixtures.vault import VaultServer
from tests.vault_emulator import KubernetesJWTIssuer, VaultEmulator


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def name(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def errors_of(call: Callable[[], object], error: type[hvac.exceptions.VaultError]) -> list[str]:
    with pytest.raises(error) as info:
        call()
    return info.value.errors or []


@pytest.fixture(scope="module")
def root(vault: VaultServer) -> hvac.Client:
    return vault.client()


@pytest.fixture(scope="module")
def transit(vault: VaultServer) -> str:
    return vault.enable_transit("api-transit")


@pytest.fixture
def emulator_only(vault: VaultServer) -> None:
    if not vault.is_emulator:
        pytest.skip("needs the emulator (a real Vault would call a Kubernetes TokenReview API)")


# --- transport ------------------------------------------------------------------------------


def test_health_is_unauthenticated_and_outside_the_envelope(vault: VaultServer) -> None:
    response = requests.get(f"{vault.address}/v1/sys/health", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    assert isinstance(body["server_time_utc"], int) and isinstance(body["version"], str)
    assert "data" not in body
    head = hvac.Client(vault.address).sys.read_health_status(method="HEAD")
    assert head.status_code == 200 and head.content == b""


def test_envelope_headers_and_error_bodies(vault: VaultServer, transit: str) -> None:
    headers = {"X-Vault-Token": vault.root_token}
    key = name()
    ok = requests.post(f"{vault.address}/v1/{transit}/keys/{key}", headers=headers, json={}, timeout=10)
    assert ok.status_code in (200, 204)
    assert ok.headers["Content-Type"] == "application/json" and ok.headers["Cache-Control"] == "no-store"
    read = requests.get(f"{vault.address}/v1/{transit}/keys/{key}", headers=headers, timeout=10)
    body = read.json()
    for field in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"):
        assert field in body
    missing = requests.get(f"{vault.address}/v1/{transit}/keys/{name()}", headers=headers, timeout=10)
    assert missing.status_code == 404 and missing.json() == {"errors": []}
    assert missing.headers["Content-Type"] == "application/json"
    bad_json = requests.post(f"{vault.address}/v1/{transit}/encrypt/{key}", headers=headers, data=b"{nope",
                             timeout=10)
    assert bad_json.status_code == 400 and "JSON input" in bad_json.json()["errors"][0]


def test_tokens_missing_or_invalid_get_403_never_401(vault: VaultServer, transit: str) -> None:
    url = f"{vault.address}/v1/{transit}/keys"
    assert requests.request("LIST", url, timeout=10).status_code == 403
    bad = requests.request("LIST", url, headers={"X-Vault-Token": "hvs.not-a-token"}, timeout=10)
    assert bad.status_code == 403 and "permission denied" in bad.json()["errors"][0]
    bearer = requests.get(f"{vault.address}/v1/auth/token/lookup-self",
                          headers={"Authorization": f"Bearer {vault.root_token}"}, timeout=10)
    assert bearer.status_code == 200


def test_unknown_path_is_404_for_root_and_403_for_a_limited_token(vault: VaultServer) -> None:
    headers = {"X-Vault-Token": vault.root_token}
    assert requests.get(f"{vault.address}/v1/{name('nomount')}/x", headers=headers, timeout=10).status_code == 404
    limited = vault.token([vault.write_policy("nothing", 'path "nothing/*" { capabilities = ["read"] }')])
    response = requests.get(f"{vault.address}/v1/{name('nomount')}/x", headers={"X-Vault-Token": limited}, timeout=10)
    assert response.status_code == 403


def test_method_mapping_errors(vault: VaultServer, transit: str) -> None:
    headers = {"X-Vault-Token": vault.root_token}
    url = f"{vault.address}/v1/{transit}/keys/{name()}"
    assert requests.request("FROB", url, headers=headers, timeout=10).status_code == 405
    patch = requests.patch(url, headers=headers, json={}, timeout=10)
    assert patch.status_code == 415  # PATCH needs Content-Type: application/merge-patch+json
    bad_list = requests.get(f"{vault.address}/v1/{transit}/keys?list=maybe", headers=headers, timeout=10)
    assert bad_list.status_code == 400
    no_op = requests.delete(f"{vault.address}/v1/{transit}/encrypt/{name()}", headers=headers, timeout=10)
    assert no_op.status_code == 405


def test_list_verb_and_get_list_true_agree(root: hvac.Client, transit: str, vault: VaultServer) -> None:
    key = name()
    root.secrets.transit.create_key(key, mount_point=transit)
    by_verb = root.secrets.transit.list_keys(mount_point=transit)["data"]["keys"]
    by_query = requests.get(f"{vault.address}/v1/{transit}/keys?list=true",
                            headers={"X-Vault-Token": vault.root_token}, timeout=10).json()["data"]["keys"]
    assert key in by_verb and by_verb == by_query


# --- sys: mounts, auth methods, policies ---------------------------------------------------------


def test_mounts_are_listed_with_data_injected_at_top_level(root: hvac.Client, transit: str) -> None:
    mounts = root.sys.list_mounted_secrets_engines()
    assert f"{transit}/" in mounts["data"] and f"{transit}/" in mounts  # legacy top-level copy
    entry = mounts["data"][f"{transit}/"]
    assert entry["type"] == "transit" and entry["accessor"] and "config" in entry
    assert "sys/" in mounts["data"] and "cubbyhole/" in mounts["data"]
    with pytest.raises(hvac.exceptions.VaultError) as conflict:
        root.sys.enable_secrets_engine("transit", path=transit)
    assert "path is already in use" in ", ".join(conflict.value.errors or [])
    assert "token/" in root.sys.list_auth_methods()["data"]


def test_enabling_an_auth_method_needs_sudo(vault: VaultServer) -> None:
    policy = vault.write_policy("authadmin", 'path "sys/auth/*" { capabilities = ["create", "update", "read"] }')
    client = vault.client(vault.token([policy]))
    errors_of(lambda: client.sys.enable_auth_method("approle", path=name("approle")), hvac.exceptions.Forbidden)
    sudo = vault.write_policy("authsudo", 'path "sys/auth/*" { capabilities = ["create", "update", "sudo"] }')
    path = name("approle")
    vault.client(vault.token([sudo])).sys.enable_auth_method("approle", path=path)
    assert f"{path}/" in vault.client().sys.list_auth_methods()["data"]
    vault.client().sys.disable_auth_method(path)


def test_policy_crud_and_builtin_protection(root: hvac.Client) -> None:
    policy_name = name("pol")
    text = 'path "secret/data/app/*" {\n  capabilities = ["read", "list"]\n}\n'
    root.sys.create_or_update_acl_policy(policy_name, text)
    assert root.sys.read_acl_policy(policy_name)["data"]["policy"] == text
    assert root.sys.read_policy(policy_name)["data"]["rules"] == text
    keys = root.sys.list_acl_policies()["data"]["keys"]
    assert {policy_name, "default", "root"} <= set(keys)
    assert "invalid capability" in ", ".join(errors_of(
        lambda: root.sys.create_or_update_acl_policy(name("bad"), 'path "x" { capabilities = ["fly"] }'),
        hvac.exceptions.InvalidRequest))
    errors_of(lambda: root.sys.delete_acl_policy("default"), hvac.exceptions.InvalidRequest)
    errors_of(lambda: root.sys.create_or_update_acl_policy("root", 'path "x" { capabilities = ["read"] }'),
              hvac.exceptions.InvalidRequest)
    root.sys.delete_acl_policy(policy_name)
    errors_of(lambda: root.sys.read_acl_policy(policy_name), hvac.exceptions.InvalidPath)


# --- ACL semantics ---------------------------------------------------------------------------------


def _client_with(vault: VaultServer, *policies: str) -> hvac.Client:
    names = [vault.write_policy("acl", text) for text in policies]
    return vault.client(vault.token(names))


def test_acl_exact_prefix_and_segment_rules(vault: VaultServer, transit: str) -> None:
    root = vault.client()
    keys = {k: name(k) for k in ("a", "b", "c")}
    for key in keys.values():
        root.secrets.transit.create_key(key, mount_point=transit)
    client = _client_with(vault, f"""
path "{transit}/encrypt/{keys['a']}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/*" {{ capabilities = ["update"] }}
path "{transit}/keys/+" {{ capabilities = ["read"] }}
""")
    ct = client.secrets.transit.encrypt_data(keys["a"], b64(b"x"), mount_point=transit)["data"]["ciphertext"]
    errors_of(lambda: client.secrets.transit.encrypt_data(keys["b"], b64(b"x"), mount_point=transit),
              hvac.exceptions.Forbidden)
    assert client.secrets.transit.decrypt_data(keys["a"], ct, mount_point=transit)["data"]["plaintext"] == b64(b"x")
    assert client.secrets.transit.read_key(keys["c"], mount_point=transit)["data"]["name"] == keys["c"]
    errors_of(lambda: client.secrets.transit.rotate_key(keys["c"], mount_point=transit), hvac.exceptions.Forbidden)
    errors_of(lambda: client.secrets.transit.list_keys(mount_point=transit), hvac.exceptions.Forbidden)


def test_acl_priority_and_deny(vault: VaultServer, transit: str) -> None:
    root = vault.client()
    allowed, denied = name("ok"), name("no")
    for key in (allowed, denied):
        root.secrets.transit.create_key(key, mount_point=transit)
    # the exact rule wins over the broader glob; a deny on the same pattern in another policy wins the merge
    client = _client_with(
        vault,
        f'path "{transit}/*" {{ capabilities = ["read", "update", "create"] }}\n'
        f'path "{transit}/keys/{denied}" {{ capabilities = ["read"] }}',
        f'path "{transit}/keys/{denied}" {{ capabilities = ["deny"] }}',
    )
    assert client.secrets.transit.read_key(allowed, mount_point=transit)["data"]["name"] == allowed
    errors_of(lambda: client.secrets.transit.read_key(denied, mount_point=transit), hvac.exceptions.Forbidden)
    # the longer glob beats the shorter one even when the shorter grants more
    narrow = _client_with(vault, f'path "{transit}/*" {{ capabilities = ["update"] }}\n'
                                 f'path "{transit}/keys/*" {{ capabilities = ["read"] }}')
    errors_of(lambda: narrow.secrets.transit.rotate_key(allowed, mount_point=transit), hvac.exceptions.Forbidden)


def test_default_policy_lets_a_token_look_itself_up_only(vault: VaultServer) -> None:
    client = _client_with(vault, 'path "nothing/*" { capabilities = ["read"] }')
    data = client.auth.token.lookup_self()["data"]
    assert "default" in data["policies"]
    errors_of(lambda: client.auth.token.lookup(vault.root_token), hvac.exceptions.Forbidden)


def test_create_versus_update_on_encrypt_upsert(vault: VaultServer, transit: str) -> None:
    key = name("upsert")
    update_only = _client_with(vault, f'path "{transit}/encrypt/*" {{ capabilities = ["update"] }}')
    errors_of(lambda: update_only.secrets.transit.encrypt_data(key, b64(b"x"), mount_point=transit),
              hvac.exceptions.Forbidden)  # a missing key makes the request a "create"
    creator = _client_with(vault, f'path "{transit}/encrypt/*" {{ capabilities = ["create", "update"] }}')
    result = creator.secrets.transit.encrypt_data(key, b64(b"x"), mount_point=transit)["data"]
    assert result["ciphertext"].startswith("vault:v1:")
    assert vault.client().secrets.transit.read_key(key, mount_point=transit)["data"]["type"] == "aes256-gcm96"
    errors_of(lambda: vault.client().secrets.transit.generate_data_key(name("nokey"), key_type="wrapped",
                                                                     mount_point=transit),
              hvac.exceptions.InvalidRequest)  # datakey never upserts


# --- tokens -------------------------------------------------------------------------------------


def test_token_create_lookup_and_accessor(vault: VaultServer) -> None:
    policy = vault.write_policy("tok", 'path "nothing/*" { capabilities = ["read"] }')
    auth = vault.client().auth.token.create(policies=[policy], ttl="1h", meta={"stage": "train"})["auth"]
    assert auth["client_token"] != auth["accessor"]
    assert sorted(auth["policies"]) == sorted([policy, "default"]) and auth["renewable"] is True
    assert auth["lease_duration"] == 3600
    data = vault.lookup(auth["client_token"])
    assert data["accessor"] == auth["accessor"] and data["meta"] == {"stage": "train"}
    assert 3590 <= data["ttl"] <= 3600 and data["creation_ttl"] == 3600 and data["type"] == "service"
    by_accessor = vault.client().auth.token.lookup_accessor(auth["accessor"])["data"]
    assert by_accessor["policies"] == data["policies"] and by_accessor["id"] == ""


def test_child_policies_must_be_a_subset(vault: VaultServer) -> None:
    mine = vault.write_policy("mine", 'path "auth/token/create" { capabilities = ["update"] }')
    other = vault.write_policy("other", 'path "x/*" { capabilities = ["read"] }')
    client = vault.client(vault.token([mine]))
    assert "subset" in ", ".join(errors_of(lambda: client.auth.token.create(policies=[other]),
                                           hvac.exceptions.InvalidRequest))
    child = client.auth.token.create(policies=[mine])["auth"]
    assert child["orphan"] is False


def test_revocation_invalidates_token_and_children(vault: VaultServer) -> None:
    policy = vault.write_policy("rev", 'path "auth/token/create" { capabilities = ["update"] }')
    parent = vault.token([policy])
    child = vault.client(parent).auth.token.create(policies=[policy])["auth"]["client_token"]
    vault.client(parent).auth.token.revoke_self()
    for token in (parent, child):
        errors_of(lambda t=token: vault.client(t).auth.token.lookup_self(), hvac.exceptions.Forbidden)


def test_token_expires_after_its_ttl(vault: VaultServer) -> None:
    token = vault.token(["default"], ttl="1s")
    client = vault.client(token)
    for _ in range(100):  # poll until the TTL has passed (at most ~5 s)
        try:
            client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a 1s token was still valid after 5 s")
    assert not client.is_authenticated()


def test_renew_self_extends_ttl(vault: VaultServer) -> None:
    client = vault.client(vault.token(["default"], ttl="10m"))
    auth = client.auth.token.renew_self(increment="20m")["auth"]
    assert 1190 <= auth["lease_duration"] <= 1200


def test_use_limited_tokens_and_orphans(vault: VaultServer) -> None:
    once = vault.token(["default"], num_uses=1)
    assert vault.client(once).auth.token.lookup_self()["data"]["num_uses"] == 0  # the last use
    errors_of(lambda: vault.client(once).auth.token.lookup_self(), hvac.exceptions.Forbidden)
    creator = vault.write_policy("creator", 'path "auth/token/create" { capabilities = ["update"] }')
    client = vault.client(vault.token([creator]))
    errors_of(lambda: client.auth.token.create(policies=[creator], no_parent=True), hvac.exceptions.InvalidRequest)
    orphan = vault.client().auth.token.create(policies=["default"], no_parent=True)["auth"]
    assert orphan["orphan"] is True


def test_revoke_by_accessor(vault: VaultServer) -> None:
    token = vault.token(["default"])
    accessor = vault.lookup(token)["accessor"]
    vault.client().auth.token.revoke_accessor(accessor)
    assert not vault.client(token).is_authenticated()


# --- AppRole ---------------------------------------------------------------------------------


def test_approle_login_and_failures(vault: VaultServer) -> None:
    mount = vault.enable_approle()
    policy = vault.write_policy("stage", 'path "nothing/*" { capabilities = ["read"] }')
    client = vault.client()
    client.auth.approle.create_or_update_approle("train", token_policies=[policy], token_ttl="20m",
                                                 secret_id_num_uses=2, mount_point=mount)
    role = client.auth.approle.read_role("train", mount_point=mount)["data"]
    assert role["token_policies"] == [policy] and role["token_ttl"] == 1200 and role["bind_secret_id"] is True
    role_id = client.auth.approle.read_role_id("train", mount_point=mount)["data"]["role_id"]
    secret = client.auth.approle.generate_secret_id("train", metadata={"team": "ml"}, mount_point=mount)["data"]
    assert secret["secret_id_num_uses"] == 2
    login = hvac.Client(vault.address)
    auth = login.auth.approle.login(role_id, secret["secret_id"], mount_point=mount)["auth"]
    assert auth["orphan"] is True and auth["renewable"] is True and auth["lease_duration"] == 1200
    assert auth["metadata"] == {"team": "ml", "role_name": "train"}
    assert sorted(auth["policies"]) == sorted(["default", policy])
    assert login.auth.token.lookup_self()["data"]["path"] == f"auth/{mount}/login"
    hvac.Client(vault.address).auth.approle.login(role_id, secret["secret_id"], mount_point=mount)
    used_up = errors_of(lambda: hvac.Client(vault.address).auth.approle.login(role_id, secret["secret_id"],
                                                                             mount_point=mount),
                        hvac.exceptions.InvalidRequest)
    assert "invalid role or secret ID" in ", ".join(used_up)
    wrong = errors_of(lambda: hvac.Client(vault.address).auth.approle.login(role_id, str(uuid.uuid4()),
                                                                           mount_point=mount),
                      hvac.exceptions.InvalidRequest)
    assert "invalid role or secret ID" in ", ".join(wrong)


def test_secret_id_accessors(vault: VaultServer) -> None:
    mount = vault.enable_approle()
    client = vault.client()
    client.auth.approle.create_or_update_approle("acc", token_policies=["default"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("acc", mount_point=mount)["data"]["role_id"]
    secret = client.auth.approle.generate_secret_id("acc", mount_point=mount)["data"]
    assert client.auth.approle.list_secret_id_accessors("acc", mount_point=mount)["data"]["keys"] == [
        secret["secret_id_accessor"]]
    client.auth.approle.destroy_secret_id_accessor("acc", secret["secret_id_accessor"], mount_point=mount)
    assert "invalid role or secret ID" in ", ".join(errors_of(
        lambda: hvac.Client(vault.address).auth.approle.login(role_id, secret["secret_id"], mount_point=mount),
        hvac.exceptions.InvalidRequest))


def test_approle_role_needs_a_constraint(vault: VaultServer) -> None:
    mount = vault.enable_approle()
    errors = errors_of(lambda: vault.client().auth.approle.create_or_update_approle(
        "loose", bind_secret_id=False, mount_point=mount), hvac.exceptions.InvalidRequest)
    assert "at least one constraint" in ", ".join(errors)


# --- Kubernetes auth ---------------------------------------------------------------------------


@pytest.mark.usefixtures("emulator_only")
def test_kubernetes_login(vault: VaultServer, vault_emulator: VaultEmulator,
                          k8s_jwt_issuer: KubernetesJWTIssuer) -> None:
    mount = vault.enable_kubernetes(k8s_jwt_issuer)
    policy = vault.write_policy("k8s", 'path "nothing/*" { capabilities = ["read"] }')
    vault.kubernetes_role(mount, "train", [policy], namespaces=["ml"], service_accounts=["train"])
    jwt = k8s_jwt_issuer.issue("ml", "train")
    auth = hvac.Client(vault.address).auth.kubernetes.login("train", jwt, mount_point=mount)["auth"]
    assert auth["metadata"]["service_account_name"] == "train"
    assert auth["metadata"]["service_account_namespace"] == "ml" and auth["metadata"]["role"] == "train"
    assert policy in auth["policies"]
    login = hvac.Client(vault.address).auth.kubernetes.login
    assert "namespace not authorized" in ", ".join(errors_of(
        lambda: login("train", k8s_jwt_issuer.issue("other", "train"), mount_point=mount), hvac.exceptions.Forbidden))
    assert "service account name not authorized" in ", ".join(errors_of(
        lambda: login("train", k8s_jwt_issuer.issue("ml", "deploy"), mount_point=mount), hvac.exceptions.Forbidden))
    forged = KubernetesJWTIssuer().issue("ml", "train")  # right claims, wrong signing key
    errors_of(lambda: login("train", forged, mount_point=mount), hvac.exceptions.Forbidden)
    errors_of(lambda: login("nope", jwt, mount_point=mount), hvac.exceptions.InvalidRequest)
    reviewer = vault_emulator.token_reviewer
    vault_emulator.token_reviewer = lambda token, config: False  # the cluster says the token is revoked
    try:
        errors_of(lambda: login("train", jwt, mount_point=mount), hvac.exceptions.Forbidden)
    finally:
        vault_emulator.token_reviewer = reviewer


# --- Transit ---------------------------------------------------------------------------------


def test_key_create_read_format(root: hvac.Client, transit: str) -> None:
    key = name()
    created = root.secrets.transit.create_key(key, mount_point=transit)
    if isinstance(created, dict):  # current Vault answers 200 with the key info (old releases: 204)
        assert created["data"]["name"] == key
    data = root.secrets.transit.read_key(key, mount_point=transit)["data"]
    assert data["type"] == "aes256-gcm96" and data["latest_version"] == 1 and data["min_decryption_version"] == 1
    assert data["supports_encryption"] and not data["supports_signing"] and not data["derived"]
    assert isinstance(data["keys"]["1"], int)
    again = root.secrets.transit.create_key(key, key_type="ecdsa-p256", mount_point=transit)
    if isinstance(again, dict):
        assert any("already existed" in w for w in again.get("warnings") or [])
    assert root.secrets.transit.read_key(key, mount_point=transit)["data"]["type"] == "aes256-gcm96"


def test_ecdsa_public_key_and_prehashed_signature(root: hvac.Client, transit: str) -> None:
    key = name("ec")
    root.secrets.transit.create_key(key, key_type="ecdsa-p256", mount_point=transit)
    entry = root.secrets.transit.read_key(key, mount_point=transit)["data"]["keys"]["1"]
    assert entry["name"] == "P-256" and entry["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert entry["public_key"].endswith("\n")
    public = serialization.load_pem_public_key(entry["public_key"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashlib.sha256(b"model manifest").digest()
    sig = root.secrets.transit.sign_data(key, b64(digest), hash_algorithm="sha2-256", prehashed=True,
                                         marshaling_algorithm="asn1", mount_point=transit)["data"]
    assert sig["key_version"] == 1 and sig["signature"].startswith("vault:v1:")
    der = base64.b64decode(sig["signature"][len("vault:v1:"):])
    public.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))  # DER, verifiable outside Vault
    # unhashed input: Vault hashes with hash_algorithm first
    plain = root.secrets.transit.sign_data(key, b64(b"model manifest"), hash_algorithm="sha2-256",
                                           mount_point=transit)["data"]["signature"]
    public.verify(base64.b64decode(plain[9:]), b"model manifest", ec.ECDSA(hashes.SHA256()))
    jws = root.secrets.transit.sign_data(key, b64(digest), prehashed=True, marshaling_algorithm="jws",
                                         mount_point=transit)["data"]["signature"]
    raw = base64.urlsafe_b64decode(jws[9:] + "=" * (-len(jws[9:]) % 4))
    assert len(raw) == 64 and "=" not in jws[9:]
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                  digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    verify = root.secrets.transit.verify_signed_data
    assert verify(key, b64(digest), signature=sig["signature"], prehashed=True, hash_algorithm="sha2-256",
                  mount_point=transit)["data"]["valid"] is True
    other = b64(hashlib.sha256(b"tampered").digest())
    assert verify(key, other, signature=sig["signature"], prehashed=True, hash_algorithm="sha2-256",
                  mount_point=transit)["data"]["valid"] is False
    bad = errors_of(lambda: verify(key, b64(digest), signature="vault:v1:" + b64(b"junk"), prehashed=True,
                                   hash_algorithm="sha2-256", mount_point=transit), hvac.exceptions.InvalidRequest)
    assert bad


def test_ed25519_signs_raw_input(root: hvac.Client, transit: str) -> None:
    key = name("ed")
    root.secrets.transit.create_key(key, key_type="ed25519", mount_point=transit)
    public_b64 = root.secrets.transit.read_key(key, mount_point=transit)["data"]["keys"]["1"]["public_key"]
    public = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    signature = root.secrets.transit.sign_data(key, b64(b"hello"), mount_point=transit)["data"]["signature"]
    assert len(signature) == len("vault:v1:") + 88
    public.verify(base64.b64decode(signature[9:]), b"hello")


def test_data_key_layout_matches_vault_ciphertext_format(root: hvac.Client, transit: str) -> None:
    key = name("dk")
    root.secrets.transit.create_key(key, exportable=True, mount_point=transit)
    data = root.secrets.transit.generate_data_key(key, key_type="plaintext", mount_point=transit)["data"]
    assert data["key_version"] == 1 and len(data["ciphertext"]) == 89 and len(base64.b64decode(data["plaintext"])) == 32
    wrapped = root.secrets.transit.generate_data_key(key, key_type="wrapped", mount_point=transit)["data"]
    assert "plaintext" not in wrapped and wrapped["ciphertext"].startswith("vault:v1:")
    # decrypt returns b64 of the raw key bytes
    assert root.secrets.transit.decrypt_data(key, data["ciphertext"], mount_point=transit)["data"]["plaintext"] == \
        data["plaintext"]
    # nonce(12) || ciphertext || tag(16) under the exported version key
    exported = root.secrets.transit.export_key(key, key_type="encryption-key", version="1", mount_point=transit)
    raw_key = base64.b64decode(exported["data"]["keys"]["1"])
    body = base64.b64decode(data["ciphertext"][9:])
    assert AESGCM(raw_key).decrypt(body[:12], body[12:], None) == base64.b64decode(data["plaintext"])
    nonce = b"\x01" * 12
    mine = "vault:v1:" + b64(nonce + AESGCM(raw_key).encrypt(nonce, b"made outside", None))
    assert root.secrets.transit.decrypt_data(key, mine, mount_point=transit)["data"]["plaintext"] == b64(b"made outside")


def test_hmac_matches_exported_hmac_key(root: hvac.Client, transit: str) -> None:
    key = name("mac")
    root.secrets.transit.create_key(key, exportable=True, mount_point=transit)
    mac = root.secrets.transit.generate_hmac(key, b64(b"alice"), algorithm="sha2-256", mount_point=transit)["data"]
    hmac_key = base64.b64decode(root.secrets.transit.export_key(key, key_type="hmac-key", version="1",
                                                                mount_point=transit)["data"]["keys"]["1"])
    assert mac["hmac"] == "vault:v1:" + b64(hmac.new(hmac_key, b"alice", hashlib.sha256).digest())
    assert root.secrets.transit.verify_signed_data(key, b64(b"alice"), hmac=mac["hmac"],
                                                   mount_point=transit)["data"]["valid"] is True


def test_private_key_export_needs_exportable(root: hvac.Client, transit: str) -> None:
    key = name("noexp")
    root.secrets.transit.create_key(key, mount_point=transit)
    errors = errors_of(lambda: root.secrets.transit.export_key(key, key_type="encryption-key", mount_point=transit),
                       hvac.exceptions.InvalidRequest)
    assert "not exportable" in ", ".join(errors)


def test_rotation_rewrap_and_min_decryption_version(root: hvac.Client, transit: str) -> None:
    key = name("rot")
    transit_api = root.secrets.transit
    transit_api.create_key(key, mount_point=transit)
    old = transit_api.encrypt_data(key, b64(b"v1 data"), mount_point=transit)["data"]["ciphertext"]
    transit_api.rotate_key(key, mount_point=transit)
    info = transit_api.read_key(key, mount_point=transit)["data"]
    assert info["latest_version"] == 2 and set(info["keys"]) == {"1", "2"}
    new = transit_api.rewrap_data(key, old, mount_point=transit)["data"]
    assert new["ciphertext"].startswith("vault:v2:") and new["key_version"] == 2
    transit_api.update_key_configuration(key, min_decryption_version=2, mount_point=transit)
    info = transit_api.read_key(key, mount_point=transit)["data"]
    assert info["min_decryption_version"] == 2 and set(info["keys"]) == {"2"}
    too_old = errors_of(lambda: transit_api.decrypt_data(key, old, mount_point=transit), hvac.exceptions.InvalidRequest)
    assert "too old" in ", ".join(too_old)
    assert transit_api.decrypt_data(key, new["ciphertext"], mount_point=transit)["data"]["plaintext"] == b64(b"v1 data")
    too_new = errors_of(lambda: transit_api.decrypt_data(key, "vault:v9:" + old[9:], mount_point=transit),
                        hvac.exceptions.InvalidRequest)
    assert "too new" in ", ".join(too_new)
    above = errors_of(lambda: transit_api.update_key_configuration(key, min_decryption_version=5, mount_point=transit),
                      hvac.exceptions.InvalidRequest)
    assert "latest key version is 2" in ", ".join(above)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda ct: ct[:9] + b64(base64.b64decode(ct[9:])[:-1] + bytes([base64.b64decode(ct[9:])[-1] ^ 1])),
     "message authentication failed"),
    (lambda ct: ct[9:], "no prefix"),
    (lambda ct: "vault:vX:" + ct[9:], "version number could not be decoded"),
    (lambda ct: ct[:9] + "!!!", "could not decode base64"),
    (lambda ct: ct[:9], "invalid ciphertext length"),
])
def test_bad_ciphertexts_are_400(root: hvac.Client, transit: str, damage: Callable[[str], str], message: str) -> None:
    key = name("bad")
    root.secrets.transit.create_key(key, mount_point=transit)
    ciphertext = root.secrets.transit.encrypt_data(key, b64(b"secret"), mount_point=transit)["data"]["ciphertext"]
    errors = errors_of(lambda: root.secrets.transit.decrypt_data(key, damage(ciphertext), mount_point=transit),
                       hvac.exceptions.InvalidRequest)
    assert message in ", ".join(errors)


def test_derived_keys_need_context(root: hvac.Client, transit: str) -> None:
    key = name("drv")
    root.secrets.transit.create_key(key, derived=True, mount_point=transit)
    data = root.secrets.transit.read_key(key, mount_point=transit)["data"]
    assert data["derived"] is True and data["kdf"] == "hkdf_sha256"
    ctx = b64(b"customers/card")
    ct = root.secrets.transit.encrypt_data(key, b64(b"4111"), context=ctx, mount_point=transit)["data"]["ciphertext"]
    assert root.secrets.transit.decrypt_data(key, ct, context=ctx, mount_point=transit)["data"]["plaintext"] == b64(b"4111")
    assert "context" in ", ".join(errors_of(lambda: root.secrets.transit.decrypt_data(key, ct, mount_point=transit),
                                            hvac.exceptions.InvalidRequest))
    errors_of(lambda: root.secrets.transit.decrypt_data(key, ct, context=b64(b"other"), mount_point=transit),
              hvac.exceptions.InvalidRequest)


def test_key_deletion_must_be_allowed(root: hvac.Client, transit: str) -> None:
    key = name("del")
    root.secrets.transit.create_key(key, mount_point=transit)
    assert "deletion is not allowed" in ", ".join(errors_of(
        lambda: root.secrets.transit.delete_key(key, mount_point=transit), hvac.exceptions.InvalidRequest))
    root.secrets.transit.update_key_configuration(key, deletion_allowed=True, mount_point=transit)
    assert root.secrets.transit.delete_key(key, mount_point=transit).status_code == 204
    errors_of(lambda: root.secrets.transit.read_key(key, mount_point=transit), hvac.exceptions.InvalidPath)


def test_batch_encrypt_reports_item_errors(vault: VaultServer, transit: str) -> None:
    root = vault.client()
    key = name("batch")
    root.secrets.transit.create_key(key, mount_point=transit)
    ok = root.secrets.transit.encrypt_data(key, batch_input=[{"plaintext": b64(b"a")}, {"plaintext": b64(b"b")}],
                                           mount_point=transit)["data"]["batch_results"]
    assert [r["ciphertext"][:9] for r in ok] == ["vault:v1:", "vault:v1:"]
    response = requests.post(f"{vault.address}/v1/{transit}/encrypt/{key}",
                             headers={"X-Vault-Token": vault.root_token},
                             json={"batch_input": [{"plaintext": b64(b"a")}, {"plaintext": "%%%"}]}, timeout=10)
    assert response.status_code == 400
    results = response.json()["data"]["batch_results"]
    assert "ciphertext" in results[0] and "error" in results[1]


# --- KV v2 -------------------------------------------------------------------------------------


def test_kv2_versions_metadata_and_deleted_versions(vault: VaultServer) -> None:
    mount = vault.enable_kv2()
    kv = vault.client().secrets.kv.v2
    for _ in range(50):  # a fresh KV v2 mount may briefly answer 400 while upgrading (real Vault)
        try:
            written = kv.create_or_update_secret("app/db", {"password": "one"}, mount_point=mount)["data"]
            break
        except hvac.exceptions.InvalidRequest:
            time.sleep(0.1)
    assert written["version"] == 1 and written["deletion_time"] == "" and written["destroyed"] is False
    kv.create_or_update_secret("app/db", {"password": "two"}, mount_point=mount)
    read = kv.read_secret_version("app/db", mount_point=mount, raise_on_deleted_version=True)["data"]
    assert read["data"] == {"password": "two"} and read["metadata"]["version"] == 2
    assert kv.read_secret_version("app/db", version=1, mount_point=mount,
                                  raise_on_deleted_version=True)["data"]["data"] == {"password": "one"}
    meta = kv.read_secret_metadata("app/db", mount_point=mount)["data"]
    assert meta["current_version"] == 2 and set(meta["versions"]) == {"1", "2"}
    assert kv.list_secrets("app", mount_point=mount)["data"]["keys"] == ["db"]
    assert "check-and-set" in ", ".join(errors_of(
        lambda: kv.create_or_update_secret("app/db", {"x": "y"}, cas=1, mount_point=mount),
        hvac.exceptions.InvalidRequest))
    kv.delete_latest_version_of_secret("app/db", mount_point=mount)
    deleted = kv.read_secret_version("app/db", mount_point=mount, raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"] != ""
    errors_of(lambda: kv.read_secret_version("never/written", mount_point=mount, raise_on_deleted_version=True),
              hvac.exceptions.InvalidPath)


def test_kv2_undelete_and_destroy(vault: VaultServer) -> None:
    mount = vault.enable_kv2()
    kv = vault.client().secrets.kv.v2
    kv.create_or_update_secret("svc", {"k": "v"}, mount_point=mount)
    kv.delete_secret_versions("svc", [1], mount_point=mount)
    kv.undelete_secret_versions("svc", [1], mount_point=mount)
    assert kv.read_secret_version("svc", mount_point=mount, raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}
    kv.destroy_secret_versions("svc", [1], mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath) as info:  # hvac returns the body only for deleted versions
        kv.read_secret_version("svc", mount_point=mount, raise_on_deleted_version=False)
    body = info.value.json
    assert body["data"]["data"] is None and body["data"]["metadata"]["destroyed"] is True
    kv.delete_metadata_and_all_versions("svc", mount_point=mount)
    errors_of(lambda: kv.read_secret_metadata("svc", mount_point=mount), hvac.exceptions.InvalidPath)


def test_kv2_first_write_needs_create(vault: VaultServer) -> None:
    mount = vault.enable_kv2()
    root_kv = vault.client().secrets.kv.v2
    root_kv.create_or_update_secret("exists", {"a": "1"}, mount_point=mount)
    client = _client_with(vault, f'path "{mount}/data/*" {{ capabilities = ["update", "read"] }}')
    client.secrets.kv.v2.create_or_update_secret("exists", {"a": "2"}, mount_point=mount)
    errors_of(lambda: client.secrets.kv.v2.create_or_update_secret("new", {"a": "1"}, mount_point=mount),
              hvac.exceptions.Forbidden)


def test_secret_id_metadata_is_a_json_string_on_the_wire(vault: VaultServer) -> None:
    mount = vault.enable_approle()
    client = vault.client()
    client.auth.approle.create_or_update_approle("meta", token_policies=["default"], mount_point=mount)
    response = requests.post(f"{vault.address}/v1/auth/{mount}/role/meta/secret-id",
                             headers={"X-Vault-Token": vault.root_token},
                             json={"metadata": json.dumps({"run": "42"})}, timeout=10)
    assert response.status_code == 200 and response.json()["data"]["secret_id"]


# --- cases the spec asks to verify against a real Vault ------------------------------------------------


def test_secret_id_for_a_missing_role_is_404(vault: VaultServer) -> None:
    mount = vault.enable_approle()
    errors = errors_of(lambda: vault.client().auth.approle.generate_secret_id("ghost", mount_point=mount),
                       hvac.exceptions.InvalidPath)
    assert 'role "ghost" does not exist' in ", ".join(errors)


def test_derived_ed25519_sign_without_context_is_an_internal_error(root: hvac.Client, transit: str) -> None:
    key = name("ded")
    root.secrets.transit.create_key(key, key_type="ed25519", derived=True, mount_point=transit)
    errors = errors_of(lambda: root.secrets.transit.sign_data(key, b64(b"x"), mount_point=transit),
                       hvac.exceptions.InternalServerError)
    assert "context" in ", ".join(errors)
    signed = root.secrets.transit.sign_data(key, b64(b"x"), context=b64(b"tenant-a"), mount_point=transit)["data"]
    public = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(signed["public_key"]))
    public.verify(base64.b64decode(signed["signature"][9:]), b"x")
