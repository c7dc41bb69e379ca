import subprocess
import sys
from pathlib import Path

from pipeshield import __version__
from pipeshield.cli import main


def test_version_and_help(capsys) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
    result = subprocess.run([sys.executable, "-m", "pipeshield.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "keys" in result.stdout


def test_keys_lifecycle(capsys, tmp_path: Path) -> None:
    assert main(["keys", "create", "sig", "--type", "ecdsa-p256"]) == 0
    assert main(["keys", "rotate", "sig"]) == 0
    assert "latest v2" in capsys.readouterr().out
    assert main(["keys", "public-key", "sig", "--version", "1"]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN PUBLIC KEY-----")
    assert main(["keys", "list"]) == 0
    assert "sig: ecdsa-p256" in capsys.readouterr().out
    assert main(["keys", "retire", "sig", "--below", "2"]) == 0
    assert "min decryption v2" in capsys.readouterr().out


def test_errors_are_one_clear_line(capsys) -> None:
    assert main(["keys", "rotate", "nope"]) == 1
    assert capsys.readouterr().err.strip() == "pipeshield: error: key 'nope' not found"
