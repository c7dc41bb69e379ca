"""Demo step for the data gate: ``gate_story(story)`` in the style of ``scripts/demo.py``.

Run alone: ``python scripts/demo_gate.py`` (writes to ./demo-output/gate)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output" / "gate"


def gate_story(story: Any) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    from pipeshield.checks.gate import run_gate
    from pipeshield.errors import DataGateFailed

    story.section("Data gate (Great Expectations + poisoning portfolio, before training)")
    OUT.mkdir(parents=True, exist_ok=True)
    X, y = make_classification(n_samples=1000, n_features=6, n_informative=4, class_sep=2.0, random_state=3)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]).assign(label=y)
    reference, incoming = frame.iloc[:500].reset_index(drop=True), frame.iloc[500:].reset_index(drop=True)
    poisoned = incoming.copy()
    flipped = np.random.default_rng(3).choice(len(poisoned), 50, replace=False)
    poisoned.loc[flipped, "label"] = 1 - poisoned.loc[flipped, "label"]
    for name, table in (("reference", reference), ("incoming", incoming), ("poisoned", poisoned)):
        table.to_parquet(OUT / f"{name}.parquet", index=False)
    suite = {"name": "train", "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}}]}

    clean = run_gate(OUT / "incoming.parquet", reference=OUT / "reference.parquet", suite=suite,
                     report_path=OUT / "clean-report.json")
    story.check("a clean batch passes validation and the poisoning checks", clean.action == "passed",
                f"report sha256 {clean.report_sha256[:12]}...")
    try:
        run_gate(OUT / "poisoned.parquet", reference=OUT / "reference.parquet", suite=suite,
                 report_path=OUT / "poisoned-report.json")
        failed, detail = False, ""
    except DataGateFailed as exc:
        failed, detail = True, ", ".join(exc.checks)
    story.check("10% label flips fail the gate (on_flag=fail), naming the checks", failed, detail)
    quarantined = run_gate(OUT / "poisoned.parquet", reference=OUT / "reference.parquet",
                           report_path=OUT / "quarantine-report.json", on_flag="quarantine")
    caught = set(json.loads((OUT / "quarantine-report.json").read_text())["flagged_rows"]) & set(flipped.tolist())
    story.check("quarantine splits the flagged rows out; training goes on with the clean rows",
                quarantined.action == "quarantined" and quarantined.clean is not None,
                f"{len(caught)}/50 flipped rows quarantined, {quarantined.clean.rows if quarantined.clean else 0} clean rows")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import Story

    os.environ.setdefault("PIPESHIELD_HOME", str(OUT / "home"))
    story = Story()
    gate_story(story)
    sys.exit(story.finish())
