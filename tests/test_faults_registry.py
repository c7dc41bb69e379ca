"""MLflow faults around signed registration and the deploy gate, against the real ``mlflow server`` with the
``signed+sqlite://`` store: the server goes down mid-registration and mid-verification, and a registering
process is killed with SIGKILL while its upload is in flight. Each time: a clear ``RegistryError`` naming
MLflow, no model version (signed or not) in the registry, no model handed to deploy, and a retry once the
server is back registers a version that verifies.

The outage is an :class:`~tests.fixtures.outage_proxy.OutageProxy` in front of the shared server: it stops
listening (connections refused) and drops requests in flight, as a crashed server does.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeshield.cli import main
from pipeshield.registry import MlflowUnreachableError, register_signed_model, verify_registered_model
from pipeshield.signing import ArtifactDigest, ModelBindings
from tests.fixtures.signed_registry import log_test_model

TRAIN = ArtifactDigest(uri="s3://bucket/train.csv", sha256="ab" * 32)
UPLOAD = "/api/2.0/mlflow-artifacts/artifacts/"


@pytest.fixture(autouse=True)
def _quick_mlflow_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow retries a refused connection with backoff for minutes by default; one quick retry here."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")


def _client(url: str):  # noqa: ANN202 - an MlflowClient
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def _versions(registry, name: str) -> list:  # noqa: ANN001
    return list(registry.client().search_model_versions(f"name = '{name}'"))


def _register(registry, url: str, model_uri: str, name: str):  # noqa: ANN001, ANN202
    with registry.provider() as provider:
        return register_signed_model(model_uri, name, datasets=[TRAIN], provider=provider,
                                     key_name=registry.key_name, client=_client(url))


def _verify(registry, name: str, version: str, dest: Path):  # noqa: ANN001, ANN202
    return verify_registered_model(name, version, keys=registry.keys(), client=registry.client(),
                                   expected=ModelBindings(datasets=(TRAIN,)), dest_dir=dest)


CUT_POINTS = {
    "artifact upload": lambda method, path: method == "PUT" and path.startswith(UPLOAD),
    "version creation": lambda method, path: method == "POST" and path.endswith("/model-versions/create"),
}


@pytest.mark.reliability("fault", "MLflow server goes down during a signed registration",
                         "MlflowUnreachableError naming the server (not 'registry refused'); no model version; "
                         "retry after the server is back registers a version that verifies")
@pytest.mark.parametrize("cut", list(CUT_POINTS))
def test_mlflow_down_during_registration(cut: str, signed_registry, outage_proxy, tmp_path: Path,
                                         reliability) -> None:
    proxy = outage_proxy(signed_registry.url)
    model_uri, _ = log_test_model(signed_registry.client())
    name = f"outage-{uuid.uuid4().hex[:8]}"
    proxy.cut_on(CUT_POINTS[cut])
    with pytest.raises(MlflowUnreachableError) as info:
        _register(signed_registry, proxy.url, model_uri, name)
    message = str(info.value)
    assert f"MLflow failed while registering {name!r}: MLflow at {proxy.url} is unreachable" in message, message
    assert any(status is None for *_, status in proxy.requests)  # the cut really happened mid-upload
    assert _versions(signed_registry, name) == []  # nothing half-made is visible
    proxy.up()
    mv = _register(signed_registry, proxy.url, model_uri, name)
    assert [v.version for v in _versions(signed_registry, name)] == [mv.version] == ["1"]
    verified = _verify(signed_registry, name, mv.version, tmp_path)
    assert verified.version == 1 and (verified.path / "weights.json").exists()
    reliability(observed=f"{type(info.value).__name__}: {message}; after restart v{mv.version} registered and verified")


@pytest.mark.reliability("fault", "MLflow server down when deploy verifies a registered version",
                         "RegistryError naming MLflow (API and CLI); no verified copy handed over; verifies once back")
def test_mlflow_down_during_verification(signed_registry, outage_proxy, tmp_path: Path, monkeypatch,
                                         capsys: pytest.CaptureFixture[str], reliability) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    mv = _register(signed_registry, signed_registry.url, log_test_model(signed_registry.client())[0], name)
    proxy = outage_proxy(signed_registry.url)
    # down in the middle: the version record is read, then the artifact download is cut
    proxy.cut_on(lambda method, path: method == "GET" and UPLOAD in path)
    with pytest.raises(MlflowUnreachableError) as info:
        verify_registered_model(name, mv.version, keys=signed_registry.keys(), client=_client(proxy.url),
                                dest_dir=tmp_path / "deploy")
    assert f"cannot download 'models:/{name}/{mv.version}': MLflow at {proxy.url} is unreachable" in str(info.value)
    assert not (tmp_path / "deploy" / name / mv.version).exists()
    assert list((tmp_path / "deploy" / name).iterdir()) == []  # no staging copy left either
    # the CLI, server down from the start
    monkeypatch.setenv("PIPESHIELD_MLFLOW_TRACKING_URI", proxy.url)
    pem = next(signed_registry.trusted_dir.glob("*.pem"))
    copy = tmp_path / "cli-copy"
    assert main(["verify", f"models:/{name}/{mv.version}", "--public-key", str(pem), "--copy-to", str(copy)]) == 1
    error = capsys.readouterr().err
    refusal = error[error.index("pipeshield: error:"):].strip()
    assert f"MLflow at {proxy.url} is unreachable (Connection refused)" in refusal and "Traceback" not in error, error
    assert not copy.exists()
    proxy.up()
    assert main(["verify", f"models:/{name}/{mv.version}", "--public-key", str(pem), "--copy-to", str(copy)]) == 0
    assert (copy / "weights.json").exists()
    reliability(observed=f"API: {type(info.value).__name__}: {info.value} / CLI: {refusal}")


KILLED_REGISTRATION = """
import sys
from pipeshield.keys import LocalKeyProvider
from pipeshield.registry import register_signed_model
url, keyring, master, key, model_uri, name = sys.argv[1:7]
from mlflow.tracking import MlflowClient
with LocalKeyProvider(keyring, bytes.fromhex(master)) as provider:
    register_signed_model(model_uri, name, provider=provider, key_name=key, client=MlflowClient(tracking_uri=url))
print("registered")
"""


@pytest.mark.reliability("fault", "registering process killed with SIGKILL while its signed upload is in flight",
                         "no model version (signed or unsigned) in the registry; a clean retry registers v1, "
                         "which verifies")
def test_sigkill_mid_registration(signed_registry, outage_proxy, tmp_path: Path, reliability) -> None:
    proxy = outage_proxy(signed_registry.url)
    model_uri, _ = log_test_model(signed_registry.client())
    name = f"killed-{uuid.uuid4().hex[:8]}"
    proxy.hold_on(lambda method, path: method == "PUT" and path.startswith(UPLOAD))
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_REGISTRATION, proxy.url, str(signed_registry.keyring_dir),
         signed_registry.master_key.hex(), signed_registry.key_name, model_uri, name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proxy.held.wait(120), "the child never started uploading"
        child.kill()  # SIGKILL
        assert child.wait(30) < 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        out, err = child.communicate()
        proxy.release()
    assert "registered" not in out, err
    assert _versions(signed_registry, name) == []  # no version, signed or not
    from mlflow.entities import LoggedModelStatus

    copies = signed_registry.client().search_logged_models(experiment_ids=["0"],
                                                           filter_string=f"name = '{name}-signed'")
    # the half-uploaded signed copy is a logged model left PENDING, never a registered version
    assert [m.status for m in copies] == [LoggedModelStatus.PENDING]
    mv = _register(signed_registry, signed_registry.url, model_uri, name)
    assert mv.version == "1" and [v.version for v in _versions(signed_registry, name)] == ["1"]
    verified = _verify(signed_registry, name, mv.version, tmp_path)
    assert f"models:/{verified.model_id}" == mv.source and verified.model_id != copies[0].model_id
    reliability(observed=f"killed during upload: 0 model versions, 1 signed copy left PENDING; the retry "
                         f"registered v{mv.version} from a new signed copy and it verified")
