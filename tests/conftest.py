"""Shared fixtures. Component fixtures (Vault emulator, MLflow server, Airflow home) live in
``tests/fixtures/`` and are registered here as pytest plugins."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.fixtures")  # fixture modules import each other

# every module of tests/fixtures/ is a pytest plugin (one module per real component)
# (processes.py first: the other fixture modules import it)
pytest_plugins = sorted(
    (
        f"tests.fixtures.{path.stem}"
        for path in (Path(__file__).parent / "fixtures").glob("*.py")
        if not path.stem.startswith("_")
    ),
    key=lambda name: (not name.endswith(".processes"), name),
)


@pytest.fixture(autouse=True)
def _isolated_pipeshield_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own PIPESHIELD_HOME and no Vault settings from the developer's shell.

    (A real Vault given by VAULT_ADDR/VAULT_TOKEN is captured by the Vault fixture at start-up and
    handed only to the tests that ask for it.)"""
    for name in list(os.environ):
        if name.startswith(("PIPESHIELD_", "VAULT_")) or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIPESHIELD_HOME", str(tmp_path / "pipeshield-home"))


@pytest.fixture
def master_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def master_key_b64(master_key: bytes) -> str:
    return base64.b64encode(master_key).decode()
