"""``pipeshield sign`` and ``pipeshield verify`` on local directories."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from pipeshield.cli import main
from pipeshield.datasets import sha256_file
from pipeshield.signing import BINDINGS_FILE, ModelBindings, resolve
from pipeshield.signing.resolve import ENTRY_POINT_GROUP, ResolvedModel


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "churn"
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"\x01" * 4096)
    (path / "MLmodel").write_text("flavors: {}\n")
    return path


def test_sign_then_verify_with_bindings(model: Path, tmp_path: Path, capsys) -> None:
    dataset = tmp_path / "train.csv"
    dataset.write_text("a,b\n1,2\n")
    assert main(["keys", "create", "pipeshield-signing", "--type", "ecdsa-p256"]) == 0
    assert main(["sign", str(model), "--version", "4", "--run-id", "r1", "--dataset", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "signed 'churn'" in out and "root digest" in out
    signed = json.loads((model / BINDINGS_FILE).read_text())["bindings"]
    assert signed["datasets"] == [{"uri": str(dataset), "sha256": sha256_file(dataset)}]

    assert main(["verify", str(model), "--name", "churn", "--version", "4", "--dataset", str(dataset)]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["verify", str(model), "--version", "5"]) == 1
    assert "binding 'version' mismatch" in capsys.readouterr().err

    assert main(["verify", str(model), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["bindings"]["run_id"] == "r1" and result["key_version"] == 1

    (model / "model.safetensors").write_bytes(b"\x02" * 4096)
    assert main(["verify", str(model), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result == {**result, "ok": False, "kind": "integrity", "subject": "model.safetensors"}


def test_verify_with_an_exported_public_key(model: Path, tmp_path: Path, capsys) -> None:
    assert main(["keys", "create", "release", "--type", "ecdsa-p256"]) == 0
    assert main(["sign", str(model), "--key", "release", "--name", "churn"]) == 0
    capsys.readouterr()
    assert main(["keys", "public-key", "release"]) == 0
    pem = tmp_path / "release.pem"
    pem.write_text(capsys.readouterr().out)
    assert main(["verify", str(model), "--public-key", str(pem), "--name", "churn"]) == 0


def test_registry_uris_need_a_resolver(capsys) -> None:
    assert main(["verify", "nosuchscheme:/churn/1"]) == 1
    assert "no model resolver for 'nosuchscheme'" in capsys.readouterr().err


def test_dangerous_pickle_refused_from_the_cli(model: Path, capsys) -> None:
    (model / "model.pkl").write_bytes(b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
    assert main(["keys", "create", "pipeshield-signing", "--type", "ecdsa-p256"]) == 0
    assert main(["sign", str(model)]) == 1
    assert "dangerous global posix.system" in capsys.readouterr().err


@contextlib.contextmanager
def _demo_resolver(target: str, settings) -> Iterator[ResolvedModel]:
    """What an MLflow resolver does: a local copy of the artifacts and the bindings the URI implies."""
    name, version = target.split(":/", 1)[1].split("/")
    yield ResolvedModel(Path(os.environ["DEMO_MODEL_DIR"]), ModelBindings(name=name, version=int(version)))


def test_registry_uri_resolver_supplies_expected_bindings(model: Path, tmp_path: Path, capsys,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint(name="demo", value=f"{__name__}:_demo_resolver", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(resolve, "entry_points", lambda group: [entry] if group == ENTRY_POINT_GROUP else [])
    monkeypatch.setenv("DEMO_MODEL_DIR", str(model))
    assert main(["keys", "create", "pipeshield-signing", "--type", "ecdsa-p256"]) == 0
    assert main(["sign", str(model), "--name", "churn", "--version", "2"]) == 0
    capsys.readouterr()
    assert main(["verify", "demo:/churn/2", "--copy-to", str(tmp_path / "deploy")]) == 0
    assert "verified copy of 'churn'" in capsys.readouterr().out
    assert (tmp_path / "deploy" / "model.safetensors").exists()
    assert main(["verify", "demo:/churn/3"]) == 1
    assert "binding 'version' mismatch" in capsys.readouterr().err
    assert main(["verify", "demo:/churn/3", "--version", "2"]) == 0  # a flag overrides the resolver
