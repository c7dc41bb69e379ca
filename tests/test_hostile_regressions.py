"""Regressions for what the fuzz targets found: each input once raised a foreign exception."""

from __future__ import annotations

import json

import pytest

from pipeshield.bom import bom_model_digest, validate_bom
from pipeshield.errors import ManifestError, SignatureFormatError
from pipeshield.stages import parse_manifest


@pytest.mark.reliability("hostile input", "stage manifest with a YAML tag such as !!python/object",
                         "ManifestError naming the line (was a PyYAML ConstructorError)")
@pytest.mark.parametrize("text", ["version: !!python/object:os.system 1\n", "version: !!int one\n",
                                  "version: !!float abc\n"])
def test_yaml_tags_are_manifest_errors(text: str, reliability) -> None:
    with pytest.raises(ManifestError, match="m.yaml:1: unreadable value") as caught:
        parse_manifest(text, "m.yaml")
    reliability(observed=str(caught.value))


@pytest.mark.reliability("hostile input", "stage manifest with a float where a duration or count is expected "
                         "(found by make soak)", "ManifestError naming the line and field (was a TypeError)")
@pytest.mark.parametrize(("field", "value", "problem"), [("token_ttl", "1.0", "invalid duration 1.0"),
                                                         ("token_max_ttl", "3600.0", "invalid duration 3600.0")])
def test_float_durations_are_manifest_errors(field: str, value: str, problem: str, reliability) -> None:
    text = ("version: 1\nstages:\n  train:\n    auth: {approle: {}}\n"
            f"    {field}: {value}\n    transit: {{data: [datakey]}}\n")
    with pytest.raises(ManifestError, match=f"m.yaml:5: stages.train.{field}: {problem}") as caught:
        parse_manifest(text, "m.yaml")
    reliability(observed=str(caught.value))


@pytest.mark.reliability("hostile input", "ML-BOM that is not JSON", "SignatureFormatError (was JSONDecodeError)")
def test_bom_that_is_not_json(reliability) -> None:
    with pytest.raises(SignatureFormatError, match="ML-BOM is not JSON") as caught:
        validate_bom("\x00{not json")
    reliability(observed=str(caught.value))


@pytest.mark.reliability("hostile input", "ML-BOM whose model hash content is not a string (found by make soak)",
                         "no model digest (was the list itself, handed on as a digest)")
@pytest.mark.parametrize("content", [[], {}, 7, None])
def test_bom_model_digest_that_is_not_a_string(content: object, reliability) -> None:
    bom = {"metadata": {"component": {"type": "machine-learning-model",
                                      "hashes": [{"alg": "SHA-256", "content": content}]}}}
    assert bom_model_digest(json.dumps(bom).encode()) is None
    reliability(observed="None")
