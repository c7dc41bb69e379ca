"""``pipeshield encrypt | decrypt | rewrap | inspect`` end to end through the real CLI entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeshield.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_encrypt_inspect_rewrap_decrypt(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "features.csv"
    src.write_bytes(b"id,ssn\n1,123-45-6789\n" * 50000)
    assert _run(capsys, "keys", "create", "pipeshield-data")[0] == 0

    code, out, err = _run(capsys, "encrypt", str(src), "--context-json", '{"run": "r1"}', "--json", "--progress")
    assert code == 0, err
    result = json.loads(out)
    enc = tmp_path / "features.csv.pse"
    assert result["output"] == str(enc) and result["key_version"] == 1
    assert b"123-45-6789" not in enc.read_bytes()
    assert "encrypting features.csv" in err and "100.0%" in err  # the progress bar

    code, out, _ = _run(capsys, "inspect", str(enc), "--json")
    info = json.loads(out)
    assert info["context"] == '{"run":"r1"}' and info["plaintext_size"] == src.stat().st_size

    assert _run(capsys, "keys", "rotate", "pipeshield-data")[0] == 0
    code, out, _ = _run(capsys, "rewrap", str(enc))
    assert out.strip() == f"{enc}: key pipeshield-data v1 -> v2"
    assert _run(capsys, "keys", "retire", "pipeshield-data", "--below", "2")[0] == 0

    dst = tmp_path / "back.csv"
    code, out, err = _run(capsys, "decrypt", str(enc), "-o", str(dst), "--context-json", '{"run": "r1"}')
    assert code == 0, err
    assert dst.read_bytes() == src.read_bytes()
    assert f"plaintext  sha256 {result['plaintext_sha256']}" in out


def test_decrypt_failure_is_one_clear_line_and_writes_nothing(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(1000))
    _run(capsys, "keys", "create", "pipeshield-data")
    assert _run(capsys, "encrypt", str(src), "--context", "a")[0] == 0
    src.unlink()
    code, _, err = _run(capsys, "decrypt", str(tmp_path / "data.bin.pse"), "--context", "b")
    assert code == 1
    assert err.startswith("pipeshield: error: context mismatch")
    assert not src.exists()
    code, _, err = _run(capsys, "decrypt", str(tmp_path / "data.bin.pse.txt"))
    assert code == 1 and "--output: required" in err


def test_inspect_refuses_a_plain_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("hello")
    code, _, err = _run(capsys, "inspect", str(tmp_path / "plain.txt"))
    assert code == 1 and "not a pipeshield envelope" in err
