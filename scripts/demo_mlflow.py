"""Demo story for signed MLflow registration: ``signed_mlflow_story(story)`` in the style of ``key_layer``.

Starts a real ``mlflow server`` with the ``signed+sqlite://`` registry store on loopback (stopped at the
end), registers an unsigned and a signed model, tries to edit a signature tag, promotes to ``champion``,
verifies at deploy, then changes one byte in the artifact store. Run alone: ``python scripts/demo_mlflow.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import OUT, ROOT, Story  # noqa: E402

MODEL_FILES = {
    "MLmodel": b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: demo\n",
    "weights.json": b'{"coef": [0.25, -1.5, 3.0], "intercept": 0.1}\n',
    "requirements.txt": b"scikit-learn==1.5.2\n",
}


@contextlib.contextmanager
def _mlflow_server(root: Path, env: dict[str, str]) -> Iterator[str]:
    """A real ``mlflow server`` with the signed registry store, stopped (process group) at the end."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.fixtures.processes import free_port, running

    port = free_port()
    db = f"sqlite:///{root / 'mlflow.db'}"
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", db, "--registry-store-uri", f"signed+{db}",
               "--artifacts-destination", str(root / "artifacts")]
    server_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | env
    url = f"http://127.0.0.1:{port}"
    with running(command, url + "/health", root / "server.log", env=server_env, cwd=root, timeout=180):
        yield url


def signed_mlflow_story(story: Story) -> None:
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeshield.config import Settings
    from pipeshield.errors import ModelIntegrityError
    from pipeshield.keys import KeyType, open_key_provider
    from pipeshield.registry import ROOT_DIGEST_TAG, keys_from_directory, register_signed_model, verify_registered_model

    story.section("Signed models in MLflow (real mlflow server, signed+sqlite registry store)")
    settings = Settings.load()
    root = OUT / "mlflow"
    trusted = root / "trusted-keys"
    trusted.mkdir(parents=True)
    provider = open_key_provider(settings)
    info = provider.create_key(settings.signing_key, KeyType.ECDSA_P256)
    pem = trusted / f"{settings.signing_key}.v{info.latest_version}.pem"
    pem.write_text(provider.public_key_pem(settings.signing_key, info.latest_version))
    env = {"PIPESHIELD_TRUSTED_KEYS_DIR": str(trusted), "PIPESHIELD_SIGNING_KEY": settings.signing_key,
           "PIPESHIELD_HOME": str(root / "server-home")}
    with _mlflow_server(root, env) as url:
        client = MlflowClient(tracking_uri=url)
        story.check("mlflow server up with the signed store and only a public key", True, url)

        run = client.create_run("0")
        model = client.create_logged_model("0", name="fraud", source_run_id=run.info.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in MODEL_FILES.items():
                (Path(tmp) / name).write_bytes(data)
            client.log_model_artifacts(model.model_id, tmp)
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)

        client.create_registered_model("fraud")
        try:
            client.create_model_version("fraud", f"models:/{model.model_id}", run_id=run.info.run_id,
                                        model_id=model.model_id)
            code = "accepted"
        except MlflowException as exc:
            code = exc.error_code
        story.check("unsigned registration refused", code == "PERMISSION_DENIED", code)

        mv = register_signed_model(f"models:/{model.model_id}", "fraud", provider=provider, client=client,
                                   settings=settings)
        story.check("signed registration accepted", mv.version == "1", f"fraud v{mv.version}")

        try:
            client.set_model_version_tag("fraud", "1", ROOT_DIGEST_TAG, "00" * 32)
            code = "accepted"
        except MlflowException as exc:
            code = exc.error_code
        story.check("editing a signature tag refused", code == "PERMISSION_DENIED", code)

        client.set_registered_model_alias("fraud", "champion", "1")
        keys = keys_from_directory(trusted, settings.signing_key)
        verified = verify_registered_model("fraud", alias="champion", keys=keys, client=client, settings=settings)
        story.check("deploy gate verifies fraud@champion", verified.version == 1, str(verified.path))

        location = client.get_model_version_download_uri("fraud", "1").split(":", 1)[1].lstrip("/")
        weights = root / "artifacts" / location / "weights.json"
        data = bytearray(weights.read_bytes())
        data[10] ^= 0x01
        weights.write_bytes(bytes(data))
        try:
            verify_registered_model("fraud", "1", keys=keys, client=client, settings=settings)
            reason = "verified"
        except ModelIntegrityError as exc:
            reason = str(exc)
        story.check("one changed byte in the artifact store fails the deploy gate", "weights.json" in reason, reason)
        try:
            client.set_registered_model_alias("fraud", "champion", "1")
            code = "accepted"
        except MlflowException as exc:
            code = exc.error_code
        story.check("champion cannot be re-pointed at the tampered version", code == "PERMISSION_DENIED", code)
    provider.close()


if __name__ == "__main__":
    import shutil

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    os.environ["PIPESHIELD_HOME"] = str(OUT / "home")
    os.environ.pop("PIPESHIELD_KEY_PROVIDER", None)
    demo_story = Story()
    signed_mlflow_story(demo_story)
    sys.exit(demo_story.finish())
