"""Our own code passes bandit; every accepted finding is a line-level `# nosec BXXX` with a reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BANDIT = str(Path(sys.executable).with_name("bandit"))


@pytest.mark.reliability("supply chain", "bandit on pipeshield, operators, hooks, plugins",
                         "no unaccepted finding")
def test_bandit_finds_nothing_in_the_package() -> None:
    result = subprocess.run(
        [BANDIT, "-q", "-r", "pipeshield", "operators", "hooks", "plugins", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    report = json.loads(result.stdout)
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]]
    assert findings == [], "\n".join(findings)
    assert report["metrics"]["_totals"]["loc"] > 500  # it really scanned the code


@pytest.mark.reliability("supply chain", "every accepted bandit finding",
                         "line-level nosec with test id and a reason")
def test_nosec_markers_name_the_test_and_give_a_reason() -> None:
    """``# nosec BXXX`` on the line, the reason in a comment on a line just above."""
    bare = []
    for path in [*ROOT.glob("pipeshield/**/*.py"), *ROOT.glob("operators/*.py"), *ROOT.glob("hooks/*.py"), *ROOT.glob("plugins/*.py")]:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if "# nosec" not in line:
                continue
            marker = line.split("# nosec", 1)[1].strip()
            above = [text.strip() for text in lines[max(0, number - 4):number - 1]]
            if not re.fullmatch(r"B\d{3}(, ?B\d{3})*", marker) or not any(text.startswith("#") for text in above):
                bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert bare == [], f"nosec without test id, or without a reason comment above: {bare}"


_FORBIDDEN_LICENSES = ("AGPL", "Affero", "SSPL", "Server Side Public", "BUSL", "Business Source",
                       "Commons Clause", "Elastic License")


def _runtime_closure() -> set[str]:
    """Names of the distributions pipeshield needs at run time (its requirements, transitively)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = ["pipeshield"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


@pytest.mark.reliability("supply chain", "licences of the runtime dependency closure",
                         "no AGPL, SSPL, BUSL, Commons Clause or Elastic licence")
def test_no_agpl_or_source_available_dependency() -> None:
    from importlib import metadata

    offenders = []
    closure = _runtime_closure()
    assert {"cryptography", "hvac", "mlflow", "apache-airflow"} <= closure
    for name in closure:
        try:
            meta = metadata.metadata(name)
        except metadata.PackageNotFoundError:
            continue
        # the declared licence: expression, classifiers and the License field's first line (some
        # packages paste whole licence texts there, which quote other licences by name)
        license_name = (meta.get("License") or "").strip().splitlines()[:1]
        text = " ".join(filter(None, [*license_name, meta.get("License-Expression"),
                                      *meta.get_all("Classifier", [])]))
        if any(marker.lower() in text.lower() for marker in _FORBIDDEN_LICENSES):
            offenders.append(f"{name}: {text[:120]}")
    assert offenders == [], offenders
