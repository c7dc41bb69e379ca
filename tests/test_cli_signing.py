"""``pipeshield sign`` and ``pipeshield verify`` on local directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeshield.cli import main
from pipeshield.datasets import sha256_file
from pipeshield.signing import BINDINGS_FILE


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
