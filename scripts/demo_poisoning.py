"""Demo step for the poisoning portfolio: ``poisoning_story(story)`` in the style of ``scripts/demo.py``."""

from __future__ import annotations

from typing import Any


def poisoning_story(story: Any) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from pipeshield.checks.errors import MissingLabelColumnError
    from pipeshield.checks.poisoning import run_poisoning_checks

    story.section("Poisoning gate (trusted reference + calibrated checks)")
    data = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    reference, incoming = train_test_split(data, train_size=0.4, stratify=data["label"], random_state=0)
    reference, incoming = reference.reset_index(drop=True), incoming.reset_index(drop=True)

    clean = run_poisoning_checks(incoming, label_column="label", reference=reference)
    story.check("a clean batch passes every check", clean.verdict == "pass", f"{len(clean.checks)} checks")

    rng = np.random.default_rng(0)
    flipped = incoming.copy()
    rows = rng.choice(len(flipped), len(flipped) // 10, replace=False)
    flipped.loc[rows, "label"] = 1 - flipped.loc[rows, "label"]
    report = run_poisoning_checks(flipped, label_column="label", reference=reference)
    caught = np.isin(rows, report.flagged_rows).mean()
    story.check("10% label flips fail the gate", "reference_label" in report.fired, f"{caught:.0%} of flips flagged")

    trigger = incoming[incoming["label"] == 1].sample(15, random_state=0).copy()
    for column in ("mean fractal dimension", "smoothness error", "concave points error"):
        trigger[column] = incoming[column].max() + 3 * incoming[column].std() + 1
    trigger["label"] = 0
    poisoned = pd.concat([incoming, trigger], ignore_index=True)
    report = run_poisoning_checks(poisoned, label_column="label", reference=reference)
    clean_rows, quarantine = report.split(poisoned)
    story.check("a backdoor trigger is quarantined", set(range(len(incoming), len(poisoned))) <= set(quarantine.index),
                f"fired: {', '.join(report.fired)}; {len(quarantine)} rows quarantined")
    try:
        run_poisoning_checks(incoming.drop(columns="label"), label_column="label", reference=reference)
        story.check("missing label column is refused", False)
    except MissingLabelColumnError as exc:
        story.check("missing label column is refused", True, str(exc))
