"""`make demo`: pipeshield's story on embedded defaults, each outcome checked.

Runs in ./demo-output (recreated on every run) so it can be run any number of times.
Exits non-zero when an expected outcome does not happen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"


class Story:
    """Prints numbered steps and records whether each expected outcome happened."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.started = time.monotonic()
        self.step = 0

    def section(self, title: str) -> None:
        print(f"\n== {title}")

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.step += 1
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {what}" + (f" ({detail})" if detail else ""), flush=True)
        if not ok:
            self.failures.append(what)

    def finish(self) -> int:
        elapsed = time.monotonic() - self.started
        if self.failures:
            print(f"\n{len(self.failures)} expected outcome(s) did not happen: {', '.join(self.failures)}")
            return 1
        print(f"\nAll {self.step} outcomes checked in {elapsed:.1f}s. Output: {OUT}")
        return 0


def key_layer(story: Story) -> None:
    from pipeshield.config import Settings
    from pipeshield.errors import KeyVersionError
    from pipeshield.keys import KeyType, open_key_provider

    story.section("Key layer (local keyring, encrypted at rest)")
    settings = Settings.load()
    provider = open_key_provider(settings)
    story.check("embedded local key provider is the default", provider.name == "local", str(settings.keyring_dir))

    wrapping = provider.create_key(settings.wrapping_key, KeyType.AES256_GCM96)
    signing = provider.create_key(settings.signing_key, KeyType.ECDSA_P256)
    story.check("wrapping and signing keys created", wrapping.latest_version == 1 and signing.latest_version == 1)

    data_key = provider.generate_data_key(settings.wrapping_key)
    unwrapped = provider.unwrap(settings.wrapping_key, data_key.wrapped)
    story.check("data key wraps and unwraps", unwrapped == data_key.plaintext, data_key.wrapped[:12] + "...")

    digest = hashlib.sha256(b"model manifest").digest()
    signature = provider.sign_digest(settings.signing_key, digest)
    story.check("digest signed and verified", provider.verify_digest(settings.signing_key, digest, signature.encoded))
    story.check(
        "a different digest does not verify",
        not provider.verify_digest(settings.signing_key, hashlib.sha256(b"other").digest(), signature.encoded),
    )

    provider.rotate(settings.wrapping_key)
    rewrapped = provider.rewrap(settings.wrapping_key, data_key.wrapped)
    story.check("rotate + rewrap moves the data key to v2", rewrapped.startswith("vault:v2:"))
    provider.set_min_decryption_version(settings.wrapping_key, 2)
    try:
        provider.unwrap(settings.wrapping_key, data_key.wrapped)
        refused = False
    except KeyVersionError as exc:
        refused, reason = True, str(exc)
    story.check("a key still wrapped under retired v1 is refused", refused, reason if refused else "")
    story.check(
        "the rewrapped key still opens", provider.unwrap(settings.wrapping_key, rewrapped) == data_key.plaintext
    )


def _stories() -> list[tuple[str, Callable[[Story], None]]]:
    """The chapters, in the order a pipeline meets them."""
    from demo_envelope import envelope_story
    from demo_gate import gate_story
    from demo_mlflow import signed_mlflow_story
    from demo_pipeline import pipeline_story
    from demo_poisoning import poisoning_story
    from demo_signing import signing_story
    from demo_stages import stages_story
    from demo_vault import vault_story

    return [
        ("keys", key_layer),
        ("vault", vault_story),
        ("stages", stages_story),
        ("gate", gate_story),
        ("poisoning", poisoning_story),
        ("envelope", envelope_story),
        ("signing", signing_story),
        ("mlflow", signed_mlflow_story),
        ("pipeline", pipeline_story),  # last: real DAG runs tell the whole story and say where to look
    ]


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    os.environ["PIPESHIELD_HOME"] = str(OUT / "home")
    for name in list(os.environ):
        if name.startswith(("PIPESHIELD_KEY_PROVIDER", "VAULT_")) or name == "MLFLOW_TRACKING_URI":
            os.environ.pop(name)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # our own progress lines only
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT / "scripts"))
    story = Story()
    print("pipeshield demo: embedded defaults (local keys, SQLite MLflow, real servers on loopback)")
    chapters = _stories()
    for number, (name, chapter) in enumerate(chapters, 1):
        print(f"\n[{number}/{len(chapters)}] {name} ({time.monotonic() - story.started:.0f}s elapsed)", flush=True)
        try:
            chapter(story)
        except Exception as exc:  # a chapter that crashes is an outcome that did not happen
            story.check(f"{name} chapter ran to the end", False, f"{type(exc).__name__}: {exc}")
    print(f"\nReports and logs: {OUT}")
    return story.finish()


if __name__ == "__main__":
    sys.exit(main())
