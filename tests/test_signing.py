"""Signing and verifying model directories: round trip, tampering, bindings, rotation, unsafe paths."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from pipeshield.errors import (
    BindingMismatchError,
    ModelIntegrityError,
    ModelPathError,
    SignatureFormatError,
    UnsupportedOperationError,
    UntrustedSignatureError,
)
from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.signing import (
    BINDINGS_FILE,
    BOM_FILE,
    SIGNATURE_FILE,
    ArtifactDigest,
    KeyVersionAtLeast,
    ModelBindings,
    TrustedKeys,
    copy_verified,
    sign_model,
    verify_model,
    verify_or_raise,
)

DATASET = ArtifactDigest(uri="s3://bucket/train.parquet", sha256="ab" * 32)
REPORT = ArtifactDigest(uri="runs:/r1/gate/report.json", sha256="cd" * 32)
BINDINGS = ModelBindings(name="churn", version=3, model_id="m-1", run_id="r1", source="runs:/r1/model",
                         datasets=(DATASET,), gate_reports=(REPORT,))


@pytest.fixture
def provider(tmp_path: Path, master_key: bytes) -> LocalKeyProvider:
    keys = LocalKeyProvider(tmp_path / "keyring", master_key)
    keys.create_key("sig", KeyType.ECDSA_P256)
    return keys


def make_model(path: Path, seed: int = 1) -> Path:
    (path / "weights").mkdir(parents=True)
    for index in range(3):
        (path / "weights" / f"part-{index}.safetensors").write_bytes(os.urandom(50_000 + seed * index))
    (path / "MLmodel").write_text("flavors: {}\n")
    (path / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    return path


def trusted(provider: LocalKeyProvider) -> TrustedKeys:
    return TrustedKeys.from_provider(provider, "sig")


@pytest.fixture
def signed(tmp_path: Path, provider: LocalKeyProvider) -> Path:
    model = make_model(tmp_path / "model")
    sign_model(model, provider, "sig", BINDINGS, workers=2)
    return model


def test_round_trip_reports_what_was_verified(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    seen: list[int] = []
    result = sign_model(model, provider, "sig", BINDINGS, workers=2, progress=seen.append)
    total = sum(p.stat().st_size for p in model.rglob("*") if p.is_file() and p.name not in
                (SIGNATURE_FILE, BINDINGS_FILE, BOM_FILE))
    assert sum(seen) == total
    assert {SIGNATURE_FILE, BINDINGS_FILE, BOM_FILE} <= {p.name for p in model.iterdir()}
    assert SIGNATURE_FILE not in result.files and BINDINGS_FILE in result.files and BOM_FILE in result.files
    assert result.key_version == 1
    verdict = verify_model(model, trusted(provider), expected=BINDINGS)
    assert verdict.ok, verdict.reason
    assert verdict.contents is not None
    assert verdict.contents.bindings == BINDINGS
    assert verdict.contents.root_digest == result.root_digest
    assert verdict.contents.content_digest == result.content_digest


def test_parallel_and_serial_hashing_sign_the_same_statement(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    one = sign_model(model, provider, "sig", BINDINGS, workers=1)
    two = sign_model(model, provider, "sig", BINDINGS, workers=2)
    assert one.content_digest == two.content_digest
    assert verify_model(model, trusted(provider), workers=1).ok


@pytest.mark.reliability("hostile input", "one byte of a signed model changed",
                         "verification fails naming the file")
def test_one_byte_changed_names_the_file(signed: Path, provider: LocalKeyProvider) -> None:
    target = signed / "weights" / "part-1.safetensors"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.kind == "integrity"
    assert result.subject == "weights/part-1.safetensors"
    assert "changed: 'weights/part-1.safetensors'" in result.reason
    with pytest.raises(ModelIntegrityError, match="part-1"):
        verify_or_raise(signed, trusted(provider))


@pytest.mark.reliability("hostile input", "file added to a signed model",
                         "verification fails naming the file")
def test_file_added_names_the_file(signed: Path, provider: LocalKeyProvider) -> None:
    (signed / "weights" / "extra.py").write_text("import os\n")
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.subject == "weights/extra.py" and "added" in result.reason


@pytest.mark.reliability("hostile input", "file removed from a signed model",
                         "verification fails naming the file")
def test_file_removed_names_the_file(signed: Path, provider: LocalKeyProvider) -> None:
    (signed / "MLmodel").unlink()
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.subject == "MLmodel" and "missing" in result.reason


@pytest.mark.reliability("hostile input", "validly signed model of another name swapped in",
                         "BindingMismatchError on name")
def test_signed_model_of_another_name_swapped_in(tmp_path: Path, provider: LocalKeyProvider) -> None:
    other = make_model(tmp_path / "other", seed=2)
    sign_model(other, provider, "sig", ModelBindings(name="fraud", version=3))
    # the other model's files, bindings and signature replace this model's, all validly signed
    result = verify_model(other, trusted(provider), expected=ModelBindings(name="churn", version=3))
    assert not result.ok and result.kind == "binding" and result.subject == "name"
    assert "'fraud'" in result.reason and "'churn'" in result.reason
    with pytest.raises(BindingMismatchError, match="name"):
        verify_or_raise(other, trusted(provider), expected=ModelBindings(name="churn"))


@pytest.mark.parametrize("expected, field", [
    (ModelBindings(version=4), "version"),
    (ModelBindings(run_id="r2"), "run_id"),
    (ModelBindings(model_id="m-2"), "model_id"),
    (ModelBindings(datasets=(ArtifactDigest("s3://bucket/train.parquet", "ef" * 32),)), "datasets"),
    (ModelBindings(gate_reports=(DATASET,)), "gate_reports"),
])
@pytest.mark.reliability("hostile input", "expected binding differs",
                         "BindingMismatchError naming the binding")
def test_each_binding_is_checked(signed: Path, provider: LocalKeyProvider, expected: ModelBindings,
                                 field: str) -> None:
    result = verify_model(signed, trusted(provider), expected=expected)
    assert not result.ok and result.subject == field


def test_an_unsigned_binding_does_not_satisfy_an_expected_one(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    sign_model(model, provider, "sig", ModelBindings(name="churn"))
    assert verify_model(model, trusted(provider), expected=ModelBindings(name="churn")).ok
    result = verify_model(model, trusted(provider), expected=ModelBindings(name="churn", version=1))
    assert not result.ok and result.subject == "version"


@pytest.mark.reliability("hostile input", "bindings file edited after signing",
                         "verification fails")
def test_bindings_file_edit_is_caught(signed: Path, provider: LocalKeyProvider) -> None:
    doc = json.loads((signed / BINDINGS_FILE).read_text())
    doc["bindings"]["name"] = "fraud"
    (signed / BINDINGS_FILE).write_text(json.dumps(doc))
    result = verify_model(signed, trusted(provider), expected=ModelBindings(name="fraud"))
    assert not result.ok and result.subject == BINDINGS_FILE


@pytest.mark.reliability("hostile input", "signature statement altered / signed by a foreign key",
                         "signature failure / UntrustedSignatureError")
def test_altered_statement_or_foreign_key_is_untrusted(signed: Path, provider: LocalKeyProvider, tmp_path: Path,
                                                       master_key: bytes) -> None:
    bundle = json.loads((signed / SIGNATURE_FILE).read_text())
    original = dict(bundle["dsseEnvelope"])
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload["subject"][0]["name"] = "renamed"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    (signed / SIGNATURE_FILE).write_text(json.dumps(bundle))
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.kind == "signature" and result.subject == SIGNATURE_FILE

    bundle["dsseEnvelope"] = original
    (signed / SIGNATURE_FILE).write_text(json.dumps(bundle))
    assert verify_model(signed, trusted(provider)).ok
    stranger = LocalKeyProvider(tmp_path / "other-keyring", master_key)
    stranger.create_key("sig", KeyType.ECDSA_P256)
    with pytest.raises(UntrustedSignatureError, match="not made by any trusted version"):
        verify_or_raise(signed, trusted(stranger))


@pytest.mark.reliability("hostile input", "missing or garbage signature bundle",
                         "SignatureFormatError / failure naming the signature file")
def test_missing_or_garbage_signature(signed: Path, provider: LocalKeyProvider) -> None:
    (signed / SIGNATURE_FILE).write_text("{not json")
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.kind == "format"
    with pytest.raises(SignatureFormatError):
        result.raise_for_failure()
    (signed / SIGNATURE_FILE).unlink()
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.subject == SIGNATURE_FILE and "no signature file" in result.reason


def test_rotation_keeps_old_versions_verifying_until_retired(tmp_path: Path, provider: LocalKeyProvider) -> None:
    old = make_model(tmp_path / "old")
    sign_model(old, provider, "sig", BINDINGS)
    provider.rotate("sig")
    new = make_model(tmp_path / "new")
    assert sign_model(new, provider, "sig", BINDINGS).key_version == 2
    assert verify_model(old, trusted(provider)).contents.key_version == 1  # type: ignore[union-attr]
    assert verify_model(new, trusted(provider)).contents.key_version == 2  # type: ignore[union-attr]
    assert not verify_model(old, trusted(provider), policy=KeyVersionAtLeast(2)).ok

    provider.set_min_decryption_version("sig", 2)
    result = verify_model(old, trusted(provider))
    # the provider no longer exports retired public keys (as Vault), so the verifier says versions are retired
    assert not result.ok and "versions below v2 are retired" in result.reason
    assert verify_model(new, trusted(provider)).ok


@pytest.mark.reliability("hostile input", "model dir with a symlink leaving the directory (at signing)",
                         "ModelPathError; nothing signed")
def test_symlink_leaving_the_directory_is_refused(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    (tmp_path / "secret.txt").write_text("outside")
    (model / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ModelPathError, match="outside the model directory"):
        sign_model(model, provider, "sig", BINDINGS)
    assert not (model / SIGNATURE_FILE).exists()


@pytest.mark.reliability("hostile input", "symlink added to a signed model",
                         "verification fails naming it")
def test_symlink_added_after_signing_is_refused(signed: Path, provider: LocalKeyProvider) -> None:
    (signed / "alias.safetensors").symlink_to(signed / "weights" / "part-0.safetensors")
    result = verify_model(signed, trusted(provider))
    assert not result.ok and result.subject == "alias.safetensors"


def test_internal_symlink_to_a_file_is_signed(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    (model / "latest.safetensors").symlink_to("weights/part-0.safetensors")
    sign_model(model, provider, "sig", BINDINGS)
    assert verify_model(model, trusted(provider)).ok


@pytest.mark.reliability("hostile input", "model file named ..\\\\evil",
                         "ModelPathError")
def test_traversal_and_odd_names_are_refused(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    (model / "..\\evil").write_text("x")
    with pytest.raises(ModelPathError, match="not a plain relative name"):
        sign_model(model, provider, "sig", BINDINGS)


def test_signing_needs_a_name_and_an_ecdsa_key(tmp_path: Path, provider: LocalKeyProvider) -> None:
    model = make_model(tmp_path / "model")
    with pytest.raises(SignatureFormatError, match="'name'"):
        sign_model(model, provider, "sig", ModelBindings(run_id="r1"))
    provider.create_key("aes", KeyType.AES256_GCM96)
    with pytest.raises(UnsupportedOperationError, match="ecdsa-p256"):
        sign_model(model, provider, "aes", BINDINGS)
    assert not (model / SIGNATURE_FILE).exists()


def test_resigning_a_copied_directory_replaces_the_sidecars(signed: Path, tmp_path: Path,
                                                            provider: LocalKeyProvider) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(signed, copy, symlinks=True)
    sign_model(copy, provider, "sig", ModelBindings(name="churn-v2"))
    assert verify_model(copy, trusted(provider), expected=ModelBindings(name="churn-v2")).ok


@pytest.mark.reliability("hostile input", "MLmodel loader swapped before the deploy copy",
                         "ModelIntegrityError; no copy left")
def test_copy_verified_keeps_only_a_verified_copy(signed: Path, tmp_path: Path, provider: LocalKeyProvider) -> None:
    contents = copy_verified(signed, tmp_path / "deploy", trusted(provider), expected=ModelBindings(name="churn"))
    assert contents.path == tmp_path / "deploy"
    assert (tmp_path / "deploy" / "weights" / "part-2.safetensors").read_bytes() == \
        (signed / "weights" / "part-2.safetensors").read_bytes()
    (signed / "MLmodel").write_text("flavors: {python_function: {loader_module: evil}}\n")
    with pytest.raises(ModelIntegrityError, match="MLmodel"):
        copy_verified(signed, tmp_path / "deploy-2", trusted(provider))
    assert not (tmp_path / "deploy-2").exists()
