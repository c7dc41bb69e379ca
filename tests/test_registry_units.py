"""Pure helpers of the registry integration: trusted-key directories, URIs, the retry marker, expectations."""

from __future__ import annotations

import pytest
from mlflow.entities.model_registry import ModelVersion

from pipeshield.errors import BindingMismatchError, ConfigError
from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.registry import (
    RegistryError,
    is_protected_tag,
    keys_from_directory,
    next_version_marker,
    parse_models_uri,
    parse_next_version,
    registry_expectations,
)
from pipeshield.signing import ModelBindings


def test_trusted_keys_directory(tmp_path, master_key) -> None:
    with LocalKeyProvider(tmp_path / "keyring", master_key) as provider:
        provider.create_key("sig", KeyType.ECDSA_P256)
        provider.rotate("sig")
        keys_dir = tmp_path / "trusted"
        keys_dir.mkdir()
        (keys_dir / "sig.v2.pem").write_text(provider.public_key_pem("sig", 2))
        (keys_dir / "other.v1.pem").write_text(provider.public_key_pem("sig", 1))
    keys = keys_from_directory(keys_dir, "sig")
    assert set(keys.public_keys) == {2}  # v1 revoked by leaving its PEM out; other keys ignored
    with pytest.raises(ConfigError, match="no public key missing.v<N>.pem"):
        keys_from_directory(keys_dir, "missing")


def test_models_uri_parsing() -> None:
    assert parse_models_uri("models:/churn/3") == ("churn", "3", None)
    assert parse_models_uri("models:/churn@champion") == ("churn", None, "champion")
    for bad in ("models:/m-abc", "models:/churn/latest", "runs:/x/model", "models:/churn/0"):
        with pytest.raises(RegistryError):
            parse_models_uri(bad)


def test_next_version_marker_round_trip() -> None:
    assert parse_next_version(f"PERMISSION_DENIED: re-sign {next_version_marker(12)}") == 12
    assert parse_next_version("PERMISSION_DENIED: unsigned model version rejected") is None


def test_protected_tags() -> None:
    assert is_protected_tag("pipeshield.signature.root_digest")
    assert is_protected_tag("pipeshield.anything")
    assert not is_protected_tag("team")


def test_registry_expectations_merge_and_conflict() -> None:
    mv = ModelVersion("churn", "4", creation_timestamp=0, source="models:/m-abc", run_id="r1")
    want = registry_expectations(mv, ModelBindings(run_id="r1", source="runs:/r1/model"))
    assert (want.name, want.version, want.model_id, want.run_id, want.source) == ("churn", 4, "m-abc", "r1",
                                                                                   "runs:/r1/model")
    with pytest.raises(BindingMismatchError, match="run_id"):
        registry_expectations(mv, ModelBindings(run_id="r2"))
