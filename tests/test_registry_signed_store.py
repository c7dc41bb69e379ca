"""The ``signed+sqlite://`` registry store against a real ``mlflow server``, and signed registration."""

from __future__ import annotations

import uuid

import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

from pipeshield.errors import UnsafeModelError
from pipeshield.registry import (
    KEY_VERSION_TAG,
    ROOT_DIGEST_TAG,
    RegistrationRefusedError,
    register_signed_model,
    signature_tags,
)
from pipeshield.signing import ArtifactDigest, ModelBindings, sign_model
from tests.fixtures.signed_registry import MODEL_FILES, log_test_model

TRAIN = ArtifactDigest(uri="s3://bucket/train.csv", sha256="ab" * 32)


def _name() -> str:
    return f"fraud-{uuid.uuid4().hex[:8]}"


def _register(registry, name: str, model_uri: str | None = None, **kwargs):  # noqa: ANN001, ANN202
    client = registry.client()
    model_uri = model_uri or log_test_model(client)[0]
    with registry.provider() as provider:
        return register_signed_model(model_uri, name, provider=provider, key_name=registry.key_name,
                                     client=client, **kwargs)


def _denied(excinfo: pytest.ExceptionInfo) -> str:
    assert excinfo.value.error_code == "PERMISSION_DENIED", excinfo.value
    return excinfo.value.message


@pytest.mark.reliability("hostile input", "unsigned model version sent to the signed registry",
                         "refused by the store; no version")
def test_unsigned_registration_is_denied(signed_registry) -> None:
    client = signed_registry.client()
    model_uri, run_id = log_test_model(client)
    name = _name()
    client.create_registered_model(name)
    with pytest.raises(MlflowException) as excinfo:
        client.create_model_version(name, model_uri, run_id=run_id, model_id=model_uri.split("/")[-1])
    assert "unsigned model version" in _denied(excinfo)
    assert client.search_model_versions(f"name = '{name}'") == []


def test_signed_registration_is_accepted_with_signature_tags(signed_registry) -> None:
    name = _name()
    mv = _register(signed_registry, name, datasets=[TRAIN])
    assert mv.version == "1"
    stored = signed_registry.client().get_model_version(name, "1")
    assert len(stored.tags[ROOT_DIGEST_TAG]) == 64
    assert stored.tags[KEY_VERSION_TAG] == "1"
    assert stored.source.startswith("models:/m-")


@pytest.mark.reliability("hostile input", "signature tags rewritten or deleted after registration",
                         "refused by the store")
def test_signature_tags_are_immutable(signed_registry) -> None:
    name = _name()
    _register(signed_registry, name)
    client = signed_registry.client()
    with pytest.raises(MlflowException) as excinfo:
        client.set_model_version_tag(name, "1", ROOT_DIGEST_TAG, "00" * 32)
    assert "immutable" in _denied(excinfo)
    with pytest.raises(MlflowException) as excinfo:
        client.delete_model_version_tag(name, "1", ROOT_DIGEST_TAG)
    assert "immutable" in _denied(excinfo)
    with pytest.raises(MlflowException) as excinfo:  # nor can a new pipeshield.* tag be added later
        client.set_model_version_tag(name, "1", "pipeshield.signature.note", "forged")
    _denied(excinfo)
    client.set_model_version_tag(name, "1", "team", "fraud")  # other tags stay editable
    assert client.get_model_version(name, "1").tags["team"] == "fraud"


def test_protected_alias_only_on_verified_versions(signed_registry) -> None:
    name = _name()
    _register(signed_registry, name)
    client = signed_registry.client()
    # a version that bypassed the signed store (written straight into the database, as a legacy row)
    model_uri, run_id = log_test_model(client)
    legacy = SqlAlchemyStore(signed_registry.server.backend_store_uri)
    legacy.create_model_version(name, signed_registry.client().get_logged_model(model_uri.split("/")[-1])
                                .artifact_location, run_id=run_id)
    assert client.get_model_version(name, "2").version == "2"
    with pytest.raises(MlflowException) as excinfo:
        client.set_registered_model_alias(name, "champion", "2")
    assert "alias 'champion' may point only at a verified version" in _denied(excinfo)
    client.set_registered_model_alias(name, "candidate", "2")  # unprotected aliases are not gated
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"


@pytest.mark.reliability("hostile input", "protected alias on a version whose artifacts were tampered",
                         "refused by the store")
def test_champion_refused_after_artifacts_are_tampered(signed_registry) -> None:
    name = _name()
    _register(signed_registry, name)
    client = signed_registry.client()
    location = client.get_model_version_download_uri(name, "1")
    weights = signed_registry.artifact_path(location) / "weights.json"
    data = bytearray(weights.read_bytes())
    data[5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(MlflowException) as excinfo:
        client.set_registered_model_alias(name, "prod", "1")
    assert "weights.json" in _denied(excinfo)


@pytest.mark.reliability("hostile input", "validly signed model of another name registered",
                         "refused by the store")
def test_validly_signed_model_of_another_name_is_refused(signed_registry) -> None:
    client = signed_registry.client()
    mv = _register(signed_registry, _name())
    other = _name()
    client.create_registered_model(other)
    stored = client.get_model_version(mv.name, mv.version)
    model_id = stored.source.split("/")[-1]
    with pytest.raises(MlflowException) as excinfo:
        client.create_model_version(other, stored.source, run_id=stored.run_id, tags=stored.tags, model_id=model_id)
    assert "binding 'name' mismatch" in _denied(excinfo)


def test_version_number_is_bound_and_the_signer_retries(signed_registry) -> None:
    name = _name()
    _register(signed_registry, name)
    client = signed_registry.client()
    client.delete_model_version(name, "1")  # the registry still counts it; the client cannot see it
    mv = _register(signed_registry, name)
    assert mv.version == "2"


def _signed_copy(registry, name: str, version: int, model_dir):  # noqa: ANN001, ANN202
    """A logged model holding MODEL_FILES signed for ``name`` v``version``: (model id, SignedModel)."""
    client = registry.client()
    client.create_registered_model(name)
    copy = client.create_logged_model("0", name="copy")
    model_dir.mkdir()
    for file, data in MODEL_FILES.items():
        (model_dir / file).write_bytes(data)
    with registry.provider() as provider:
        signed = sign_model(model_dir, provider, registry.key_name,
                            ModelBindings(name=name, version=version, model_id=copy.model_id))
    client.log_model_artifacts(copy.model_id, str(model_dir))
    return copy.model_id, signed


@pytest.mark.reliability("hostile input", "signature bound to another version number",
                         "refused by the store")
def test_signature_for_another_version_is_refused(signed_registry, tmp_path) -> None:
    name = _name()
    model_id, signed = _signed_copy(signed_registry, name, 7, tmp_path / "model")
    with pytest.raises(MlflowException) as excinfo:
        signed_registry.client().create_model_version(name, f"models:/{model_id}", tags=signature_tags(signed),
                                                      model_id=model_id)
    message = _denied(excinfo)
    assert "binds version 7" in message and "assigns version 1" in message


@pytest.mark.reliability("hostile input", "signature tags that do not match the signature",
                         "refused by the store")
def test_tags_must_record_the_verified_signature(signed_registry, tmp_path) -> None:
    name = _name()
    model_id, signed = _signed_copy(signed_registry, name, 1, tmp_path / "model")
    forged = signature_tags(signed) | {ROOT_DIGEST_TAG: "00" * 32}
    client = signed_registry.client()
    with pytest.raises(MlflowException) as excinfo:
        client.create_model_version(name, f"models:/{model_id}", tags=forged, model_id=model_id)
    assert ROOT_DIGEST_TAG in _denied(excinfo)
    mv = client.create_model_version(name, f"models:/{model_id}", tags=signature_tags(signed), model_id=model_id)
    assert mv.version == "1"


def test_dangerous_pickle_is_refused_before_signing(signed_registry) -> None:
    client = signed_registry.client()
    evil = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94."
    model_uri, _ = log_test_model(client, MODEL_FILES | {"model.pkl": evil})
    name = _name()
    with pytest.raises(UnsafeModelError):
        _register(signed_registry, name, model_uri)
    assert client.search_model_versions(f"name = '{name}'") == []


def test_refusal_is_reported_as_registration_refused(signed_registry) -> None:
    name = _name()
    with pytest.raises(RegistrationRefusedError, match="binds version"):
        _register(signed_registry, name, max_attempts=1, model_uri=_stale_guess(signed_registry, name))


def _stale_guess(registry, name: str) -> str:  # noqa: ANN001
    """Register and delete v1, so the client's guess (1) is stale; returns a fresh model to register."""
    _register(registry, name)
    registry.client().delete_model_version(name, "1")
    return log_test_model(registry.client())[0]


@pytest.mark.reliability("hostile input", "model signed by an untrusted key",
                         "refused by the store")
def test_signature_by_an_untrusted_key_is_refused(signed_registry, tmp_path, master_key) -> None:
    from pipeshield.keys import KeyType, LocalKeyProvider

    client = signed_registry.client()
    name = _name()
    with LocalKeyProvider(tmp_path / "rogue-keyring", master_key) as rogue:
        rogue.create_key(signed_registry.key_name, KeyType.ECDSA_P256)
        with pytest.raises(RegistrationRefusedError, match="not made by any trusted version"):
            register_signed_model(log_test_model(client)[0], name, provider=rogue,
                                  key_name=signed_registry.key_name, client=client)
    assert client.search_model_versions(f"name = '{name}'") == []


def test_register_from_a_local_directory(signed_registry, tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for file, data in MODEL_FILES.items():
        (model_dir / file).write_bytes(data)
    name = _name()
    mv = _register(signed_registry, name, str(model_dir))
    assert mv.version == "1" and not mv.run_id
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(MODEL_FILES)  # the source is left untouched
