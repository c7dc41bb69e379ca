"""`benchmarks/poisoning.py --quick` runs end to end and ends with one JSON line holding every key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"min_auroc_margin", "flip_ap", "ood_ap", "dup_recall", "oob_backdoor_ap", "oob_backdoor_asr_after",
        "inrange_backdoor_ap", "clean_false_alarm", "batch_power_1pct", "rows_per_s_100k"}


def test_quick_benchmark_prints_the_json_line() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "poisoning.py"), "--quick"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert KEYS <= set(last), sorted(KEYS - set(last))
    assert last["quick"] is True
    assert all(isinstance(last[k], (int, float)) for k in KEYS)
    assert 0.0 <= last["clean_false_alarm"] <= 1.0 and last["rows_per_s_100k"] > 0
    assert {"portfolio", "cleanlab_alone", "iforest_alone"} <= set(last["table"]["flip_rand_10"])
