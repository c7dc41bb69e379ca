"""Contract with model-signing 1.1.x: the private API pipeshield uses, and stock verifier interop."""

from __future__ import annotations

import base64
import json
import os
from importlib.metadata import version
from pathlib import Path

import pytest
from google.protobuf import json_format
from model_signing import hashing, verifying
from model_signing._signing import sign_sigstore_pb
from model_signing._signing import signing as oms_signing

from pipeshield.cli import main
from pipeshield.keys import KeyType, LocalKeyProvider, open_key_provider
from pipeshield.signing import BINDINGS_FILE, PREDICATE_TYPE, SIGNATURE_FILE, ModelBindings, sign_model
from pipeshield.signing import _oms


def make_model(path: Path) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(os.urandom(100_000))
    (path / "sub" / "config.json").write_text('{"layers": 2}')
    (path / "a-b.txt").write_text("sorted before sub/ as a string, after it as a path")
    return path


@pytest.fixture
def provider(tmp_path: Path, master_key: bytes) -> LocalKeyProvider:
    keys = LocalKeyProvider(tmp_path / "keyring", master_key)
    keys.create_key("sig", KeyType.ECDSA_P256)
    return keys


def test_pinned_private_api_is_present() -> None:
    assert version("model-signing").startswith("1.1.")
    assert PREDICATE_TYPE == oms_signing._PREDICATE_TYPE == "https://model_signing/signature/v1.0"
    assert oms_signing._IN_TOTO_JSON_PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert sign_sigstore_pb._BUNDLE_MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert sign_sigstore_pb.pae(b"{}") == b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
    for name in ("Payload", "dsse_payload_to_manifest"):
        assert callable(getattr(oms_signing, name))


def test_our_statement_equals_the_stock_hashing_of_the_same_directory(tmp_path: Path,
                                                                      provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    signed = sign_model(model, provider, "sig", ModelBindings(name="churn"))
    stock = hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE]).hash(model)
    stock_statement = json.loads(json_format.MessageToJson(oms_signing.Payload(stock).statement.pb))
    bundle = json.loads((model / SIGNATURE_FILE).read_text())
    ours = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert ours["predicateType"] == PREDICATE_TYPE
    assert ours["subject"][0]["digest"] == stock_statement["subject"][0]["digest"]
    assert ours["subject"][0]["digest"]["sha256"] == signed.root_digest
    assert ours["predicate"]["resources"] == stock_statement["predicate"]["resources"]
    assert BINDINGS_FILE in {r["name"] for r in ours["predicate"]["resources"]}


def test_stock_verifier_accepts_our_bundle_with_the_cli_public_key(tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path / "model")
    assert main(["keys", "create", "pipeshield-signing", "--type", "ecdsa-p256"]) == 0
    assert main(["sign", str(model), "--name", "churn"]) == 0
    capsys.readouterr()
    assert main(["keys", "public-key", "pipeshield-signing"]) == 0
    pem = tmp_path / "signing.pem"
    pem.write_text(capsys.readouterr().out)

    stock = verifying.Config().use_elliptic_key_verifier(public_key=pem)
    stock.verify(model, model / SIGNATURE_FILE)  # raises on failure

    (model / "sub" / "config.json").write_text('{"layers": 3}')
    with pytest.raises(ValueError, match="Hash mismatch for 'sub/config.json'"):
        verifying.Config().use_elliptic_key_verifier(public_key=pem).verify(model, model / SIGNATURE_FILE)


def test_stock_verifier_refuses_another_key(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    sign_model(model, provider, "sig", ModelBindings(name="churn"))
    with open_key_provider() as other:
        other.create_key("sig", KeyType.ECDSA_P256)
        pem = tmp_path / "other.pem"
        pem.write_text(other.public_key_pem("sig"))
    with pytest.raises(ValueError, match="Key mismatch"):
        verifying.Config().use_elliptic_key_verifier(public_key=pem).verify(model, model / SIGNATURE_FILE)


def test_statement_helper_is_what_the_provider_signs(provider: LocalKeyProvider) -> None:
    raw = _oms.statement("m", {"a": b"\x01" * 32}, ignore_paths=[SIGNATURE_FILE], allow_symlinks=False)
    bundle, key_version, pem = _oms.sign_statement(raw, provider, "sig")
    envelope = json.loads(bundle)["dsseEnvelope"]
    assert base64.b64decode(envelope["payload"]) == raw and key_version == 1
    signature = "vault:v1:" + envelope["signatures"][0]["sig"]
    assert provider.verify_digest("sig", _oms.pae_digest(raw), signature)
    assert json.loads(bundle)["verificationMaterial"]["publicKey"]["hint"] == _oms.pem_hint(pem)


def test_hint_does_not_depend_on_the_providers_pem_layout(provider: LocalKeyProvider) -> None:
    pem = provider.public_key_pem("sig")
    body = "".join(pem.strip().splitlines()[1:-1])
    one_line = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"  # no 64-column wrap, no final newline
    assert _oms.pem_hint(one_line) == _oms.pem_hint(pem)
