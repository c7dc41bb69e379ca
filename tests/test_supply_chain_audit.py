"""pip-audit on the installed environment, when its advisory service (the PyPI JSON API) is reachable.

pip-audit's default service asks ``https://pypi.org/pypi/<name>/<version>/json`` for every installed
distribution. Some mirrors serve the package index but answer 404 there; pip-audit then reports each
distribution as "not found on PyPI and could not be audited" and still prints "No known vulnerabilities
found". This test does not take that for an audit: when the versioned API is unreachable, or pip-audit
could not look a distribution up, it is skipped (or fails, for a partial audit) and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

IGNORED: dict[str, str] = {}  # advisory id -> why it does not apply (triaged one by one, never wholesale)


def _advisory_service_problem() -> str | None:
    """Why pip-audit's advisory API cannot answer from here, or None."""
    probe = f"https://pypi.org/pypi/pip/{metadata.version('pip')}/json"  # the exact kind of URL pip-audit calls
    try:
        # a fixed https URL of the advisory service pip-audit itself calls
        with urllib.request.urlopen(probe, timeout=15) as response:  # nosec B310
            json.load(response)["info"]["version"]
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {probe}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{type(exc).__name__} from {probe}"
    return None


@pytest.mark.reliability("supply chain", "pip-audit on the installed environment",
                         "every distribution looked up, no known vulnerability without a triaged reason; "
                         "skipped: advisory service unreachable")
def test_pip_audit_finds_no_unexplained_vulnerability(reliability) -> None:
    problem = _advisory_service_problem()
    if problem:
        pytest.skip(f"advisory service unreachable ({problem})")
    command = [str(Path(sys.executable).with_name("pip-audit")), "--format", "json", "--progress-spinner", "off",
               "--skip-editable", *[arg for vuln in IGNORED for arg in ("--ignore-vuln", vuln)]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    dependencies = [d for d in json.loads(done.stdout)["dependencies"] if d["name"] != "pipeshield"]
    unaudited = [f"{d['name']} {d.get('version', '')}".strip() for d in dependencies if "skip_reason" in d]
    if unaudited and len(unaudited) == len(dependencies):
        pytest.skip(f"advisory service unreachable (pip-audit could look up none of {len(dependencies)} distributions)")
    assert unaudited == [], f"pip-audit could not audit: {unaudited}"
    found = [f"{d['name']} {d['version']}: {v['id']}" for d in dependencies for v in d.get("vulns", [])]
    assert found == [], "\n".join(found)
    reliability(observed=f"{len(dependencies)} distributions audited, no known vulnerability")
