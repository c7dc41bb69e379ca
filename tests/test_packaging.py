"""Layout promises: the core never imports Airflow; adapters install as pipeshield sub-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_core_does_not_import_airflow(tmp_path: Path) -> None:
    code = (
        "import sys, pipeshield, pipeshield.keys, pipeshield.config, pipeshield.cli\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(pipeshield.__path__, 'pipeshield.'):\n"
        "    if m.name.split('.')[1] not in ('operators', 'hooks', 'plugins') and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(bad)"
    )
    assert _run(code, tmp_path).strip() == "[]"


def test_editable_install_maps_adapters_to_top_level_dirs(tmp_path: Path) -> None:
    out = _run(
        "import pipeshield.operators as o, pipeshield.hooks as h, pipeshield.plugins as p;"
        "print(o.__file__); print(h.__file__); print(p.__file__)",
        tmp_path,
    )
    files = [Path(line) for line in out.split()]
    assert [f.parent for f in files] == [ROOT / "operators", ROOT / "hooks", ROOT / "plugins"]


def test_every_package_directory_is_declared() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    mapping = {"pipeshield": ROOT / "pipeshield", "pipeshield.operators": ROOT / "operators",
               "pipeshield.hooks": ROOT / "hooks", "pipeshield.plugins": ROOT / "plugins"}
    found = set()
    for prefix, base in mapping.items():
        for init in base.rglob("__init__.py"):
            found.add(".".join((prefix, *init.parent.relative_to(base).parts)))
    assert found <= declared, f"packages not declared in pyproject.toml: {sorted(found - declared)}"


def test_regular_install_outside_the_repo(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = _run(
        "import pipeshield, pipeshield.operators, pipeshield.hooks, pipeshield.plugins, sys;"
        "print(pipeshield.__file__); print(pipeshield.operators.__file__);"
        "print(any(m.startswith('airflow') for m in sys.modules))",
        tmp_path, env,
    )
    core, operators, airflow_loaded = out.split()
    assert core.startswith(str(target)) and operators.startswith(str(target))
    assert airflow_loaded == "False"
