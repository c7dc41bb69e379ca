"""``encrypted+file://`` artifacts against a real ``mlflow server``: a logged model is ciphertext on
disk and loads and predicts through ``mlflow.pyfunc.load_model``."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from sklearn.linear_model import LogisticRegression

from pipeshield.envelope import read_header
from pipeshield.keys import open_key_provider
from pipeshield.plugins.mlflow_artifacts import EncryptedArtifactRepository


@pytest.fixture
def keyring() -> None:
    with open_key_provider() as provider:
        provider.create_key("pipeshield-data")


def test_logged_model_is_ciphertext_and_loads(mlflow_server, keyring: None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    store = tmp_path / "encrypted-store"
    experiment = mlflow.create_experiment(f"encrypted-{tmp_path.name}", artifact_location=f"encrypted+file://{store}")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(features, labels)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert (loaded.predict(features) == model.predict(features)).all()

    stored = [p for p in store.rglob("*") if p.is_file()]
    assert "MLmodel" in {p.name for p in stored} and len(stored) >= 4, sorted(p.name for p in stored)
    assert all(p.read_bytes().startswith(b"PSHLDENC") for p in stored)
    plain_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "plain")))
    plain_files = [p for p in plain_dir.rglob("*") if p.is_file() and p.name != "registered_model_meta"]
    assert {p.name for p in plain_files} == {p.name for p in stored}  # (MLflow adds registered_model_meta)
    blobs = []  # envelope bodies; headers hold only the key reference, wrapped key and the binding
    for path in stored:
        with open(path, "rb") as handle:
            header = read_header(handle)
            blobs.append(handle.read())
        assert json.loads(header.context)["path"].endswith(path.name)
    for plain in plain_files:
        data = plain.read_bytes()
        for start in range(0, max(len(data) - 16, 1), max(len(data) // 8, 1)):
            window = data[start : start + 16]
            assert not any(window in blob for blob in blobs), f"plaintext of {plain.name} found on disk"


def test_a_ciphertext_moved_to_another_path_does_not_decrypt(keyring: None, tmp_path: Path) -> None:
    repo = get_artifact_repository(f"encrypted+file://{tmp_path}/store/run1/artifacts")
    assert isinstance(repo, EncryptedArtifactRepository)
    (tmp_path / "weights.bin").write_bytes(b"\x01\x02" * 1000)
    repo.log_artifact(str(tmp_path / "weights.bin"), "model")
    (tmp_path / "back").mkdir()
    (tmp_path / "again").mkdir()
    repo.download_artifacts("model/weights.bin", str(tmp_path / "back"))
    assert (tmp_path / "back" / "model" / "weights.bin").read_bytes() == b"\x01\x02" * 1000
    moved = tmp_path / "store" / "run1" / "artifacts" / "other"
    moved.mkdir()
    (tmp_path / "store" / "run1" / "artifacts" / "model" / "weights.bin").rename(moved / "weights.bin")
    with pytest.raises(MlflowException, match="other/weights.bin #####\ncontext mismatch"):  # wraps ContextMismatchError
        repo.download_artifacts("other/weights.bin", str(tmp_path / "again"))
    assert not (tmp_path / "again" / "other" / "weights.bin").exists()


def test_encrypted_s3_delegates_to_mlflows_s3_repository() -> None:
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    repo = get_artifact_repository("encrypted+s3://bucket/mlruns/1/abc/artifacts")
    assert isinstance(repo, EncryptedArtifactRepository)
    assert isinstance(repo._inner, S3ArtifactRepository)
    assert repo._inner.artifact_uri == "s3://bucket/mlruns/1/abc/artifacts"
