"""The ML-BOM: valid CycloneDX 1.6, describes the model, its datasets and dependencies, covered by the signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from pipeshield.bom import bom_model_digest, build_bom, validate_bom
from pipeshield.errors import SignatureFormatError
from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.signing import BOM_FILE, ArtifactDigest, ModelBindings, TrustedKeys, sign_model, verify_model

BINDINGS = ModelBindings(
    name="churn", version=2, run_id="r1",
    datasets=(ArtifactDigest("s3://bucket/train.parquet", "ab" * 32), ArtifactDigest("data/local.csv", "cd" * 32)),
    gate_reports=(ArtifactDigest("runs:/r1/gate.json", "ef" * 32),),
)


def test_bom_is_strictly_valid_and_complete() -> None:
    raw = build_bom(BINDINGS, "12" * 32, "scikit-learn==1.5.0\nnumpy>=1.26  # comment\n-r other.txt\nmlflow\n")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw.decode()) is None
    doc = json.loads(raw)
    assert doc["specVersion"] == "1.6"
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "churn" and model["version"] == "2"
    assert model["hashes"] == [{"alg": "SHA-256", "content": "12" * 32}]
    assert bom_model_digest(raw) == "12" * 32
    assert model["modelCard"]["modelParameters"]["datasets"] == [{"ref": "dataset-0"}, {"ref": "dataset-1"}]
    by_ref = {c["bom-ref"]: c for c in doc["components"]}
    assert by_ref["dataset-0"]["hashes"][0]["content"] == "cd" * 32  # sorted by uri: data/local.csv first
    assert by_ref["dataset-1"]["externalReferences"] == [{"type": "distribution", "url": "s3://bucket/train.parquet"}]
    assert by_ref["gate-report-0"]["type"] == "data"
    assert by_ref["pypi-scikit-learn"]["purl"] == "pkg:pypi/scikit-learn@1.5.0"
    assert by_ref["pypi-numpy"]["purl"] == "pkg:pypi/numpy" and "pypi-mlflow" in by_ref
    model_deps = next(d for d in doc["dependencies"] if d["ref"] == "model")["dependsOn"]
    assert set(model_deps) == set(by_ref)


def test_invalid_bom_is_rejected() -> None:
    doc = json.loads(build_bom(BINDINGS, "12" * 32))
    doc["metadata"]["component"]["modelCard"]["modelParameters"]["approach"] = {"type": "magic"}
    with pytest.raises(SignatureFormatError, match="not valid CycloneDX 1.6"):
        validate_bom(json.dumps(doc))


def test_bom_is_covered_by_the_signature(tmp_path: Path, master_key: bytes) -> None:
    provider = LocalKeyProvider(tmp_path / "keyring", master_key)
    provider.create_key("sig", KeyType.ECDSA_P256)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x00" * 1000)
    (model / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    signed = sign_model(model, provider, "sig", BINDINGS)
    assert bom_model_digest((model / BOM_FILE).read_bytes()) == signed.content_digest
    doc = json.loads((model / BOM_FILE).read_text())
    assert any(c["name"] == "scikit-learn" for c in doc["components"])

    doc["components"] = [c for c in doc["components"] if c["type"] != "data"]  # hide the training data
    (model / BOM_FILE).write_text(json.dumps(doc))
    result = verify_model(model, TrustedKeys.from_provider(provider, "sig"))
    assert not result.ok and result.subject == BOM_FILE
