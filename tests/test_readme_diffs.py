"""The README's diffs of the example DAGs are the real ones: each added line is in the secured DAG,
each removed line in the original, each context line in both."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIFF_BLOCK = re.compile(r"`diff -u (dags/\S+) (dags/\S+)`.*?```diff\n(.*?)```", re.S)


def _diffs() -> list[tuple[str, str, str]]:
    return DIFF_BLOCK.findall((ROOT / "README.md").read_text())


def test_readme_shows_both_example_dag_diffs() -> None:
    assert {(old, new) for old, new, _ in _diffs()} == {
        ("dags/train_model.py", "dags/train_model_secured.py"),
        ("dags/deploy_model.py", "dags/deploy_model_secured.py"),
    }


@pytest.mark.parametrize("old,new,body", _diffs(), ids=lambda value: value if value.startswith("dags/") else "")
def test_readme_diff_lines_are_in_the_dags(old: str, new: str, body: str) -> None:
    old_lines = set((ROOT / old).read_text().splitlines())
    new_lines = set((ROOT / new).read_text().splitlines())
    for line in body.splitlines():
        sign, text = line[:1], line[1:]
        if line.strip() == "..." or not line:
            continue
        expected = {"+": new_lines, "-": old_lines, " ": old_lines & new_lines}[sign]
        assert text in expected, f"README diff line not in {new if sign == '+' else old}: {line!r}"
