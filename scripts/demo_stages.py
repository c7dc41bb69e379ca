"""Demo chapter: least privilege per stage, generated from the default manifest (no Vault needed).

``stages_story(story)`` follows the style of ``key_layer`` in ``scripts/demo.py``; run alone with
``python scripts/demo_stages.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import OUT, Story  # noqa: E402


def stages_story(story: Story) -> None:
    import dataclasses

    import yaml

    from pipeshield.stages import audit, helm_values, load_manifest, policy_rules, render_vault

    story.section("Per-stage identity (one manifest -> Vault policies, ServiceAccounts, audit)")
    manifest = load_manifest()
    out = OUT / "stages"
    for name, text in render_vault(manifest).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    (out / "values.yaml").write_text(yaml.safe_dump(helm_values(manifest), sort_keys=False))
    story.check("Vault policies, AppRole/Kubernetes roles and Helm values rendered",
                (out / "policies/pipeshield-train.hcl").exists(), str(out))

    def ops(stage: str) -> set[str]:
        return {path.split("/")[1] for path in policy_rules(manifest.stage(stage), manifest.vault)}

    story.check("train may create data keys and decrypt, never sign", {"datakey", "decrypt"} <= ops("train")
                and "sign" not in ops("train"))
    story.check("register may sign, never decrypt", "sign" in ops("register") and "decrypt" not in ops("register"))
    story.check("deploy may verify and decrypt models, never sign or create keys",
                {"verify", "decrypt"} <= ops("deploy") and not {"sign", "datakey"} & ops("deploy"))
    story.check("the default manifest passes the audit", audit(manifest) == [])

    greedy_train = dataclasses.replace(manifest.stage("train"),
                                       transit={**manifest.stage("train").transit, "pipeshield-signing": frozenset({"sign"})})
    greedy = dataclasses.replace(manifest, stages={**manifest.stages, "train": greedy_train})
    kinds = sorted({finding.kind for finding in audit(greedy)})
    story.check("a train stage that may also sign is flagged", "sign-and-decrypt" in kinds, ", ".join(kinds))


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    demo_story = Story()
    stages_story(demo_story)
    sys.exit(demo_story.finish())
