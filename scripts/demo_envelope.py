"""Envelope encryption for ``make demo``: ``envelope_story(story)`` in the style of ``key_layer``.

Run alone with ``python scripts/demo_envelope.py`` (uses ./demo-output like the main demo).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"


def envelope_story(story) -> None:  # noqa: ANN001 - scripts/demo.py's Story
    import pandas as pd

    from pipeshield.config import Settings
    from pipeshield.envelope import (
        ContextMismatchError,
        IntegrityError,
        KeyVersionRefusedError,
        decrypt_file,
        encrypt_file,
        inspect_file,
        rewrap_file,
    )
    from pipeshield.keys import open_key_provider
    from pipeshield.tokenize import tokenize_frame

    story.section("Envelope encryption (streaming AES-256-GCM, one data key per object)")
    settings = Settings.load()
    provider = open_key_provider(settings)
    key = settings.wrapping_key
    provider.create_key(key)
    work = OUT / "envelope"
    work.mkdir(parents=True, exist_ok=True)
    plain = work / "train.csv"
    plain.write_bytes(b"id,ssn,label\n" + b"".join(b"%d,%03d-45-6789,%d\n" % (i, i % 1000, i % 2) for i in range(200_000)))
    binding = {"dataset": "train", "run": "demo"}

    result = encrypt_file(plain, work / "train.csv.pse", provider, key_name=key, context=binding, digests=True)
    sealed = (work / "train.csv.pse").read_bytes()
    story.check("dataset encrypted; no plaintext in the envelope", b"-45-6789" not in sealed,
                f"{result.plaintext_size / 1e6:.1f} MB, key {result.key_name} v{result.key_version}")
    info = inspect_file(work / "train.csv.pse")
    story.check("inspect reads the header without any key", info["chunks"] >= 4, f"{info['chunks']} chunks of 1 MiB")

    back = decrypt_file(work / "train.csv.pse", work / "train.back.csv", provider, context=binding, digests=True)
    story.check("decrypts to the same SHA-256", back.plaintext_sha256 == result.plaintext_sha256,
                result.plaintext_sha256[:16] + "...")

    tampered = bytearray(sealed)
    tampered[len(sealed) // 2] ^= 1
    (work / "tampered.pse").write_bytes(bytes(tampered))
    try:
        decrypt_file(work / "tampered.pse", work / "tampered.csv", provider, context=binding)
        reason = ""
    except IntegrityError as exc:
        reason = str(exc)
    story.check("one flipped bit is refused and nothing is written", bool(reason) and not (work / "tampered.csv").exists(),
                reason)
    try:
        decrypt_file(work / "train.csv.pse", work / "other.csv", provider, context={"dataset": "eval", "run": "demo"})
        reason = ""
    except ContextMismatchError as exc:
        reason = str(exc)
    story.check("an envelope presented for another dataset is refused", bool(reason), reason[:60] + "...")

    encrypt_file(plain, work / "stale.pse", provider, key_name=key, context=binding)
    old = provider.key_info(key).latest_version
    provider.rotate(key)
    rewrapped = rewrap_file(work / "train.csv.pse", provider)
    provider.set_min_decryption_version(key, old + 1)
    ok = decrypt_file(work / "train.csv.pse", work / "train.v2.csv", provider, context=binding).key_version == old + 1
    story.check("rotate + rewrap (header only) + retire the old version: still decrypts", ok,
                f"v{rewrapped.old_version} -> v{rewrapped.new_version}")
    try:
        decrypt_file(work / "stale.pse", work / "stale.csv", provider, context=binding)
        reason = ""
    except KeyVersionRefusedError as exc:
        reason = str(exc)
    story.check("an envelope still wrapped under the retired version is refused", bool(reason), reason[:90] + "...")

    people = pd.DataFrame({"email": ["a@x.org", "b@x.org", "a@x.org"], "spend": [10, 20, 30]})
    tokens, _ = tokenize_frame(people, provider, key_name=key, context="demo", token_columns=["email"])
    story.check("tokenized emails still group (deterministic tokens)",
                tokens.groupby("email")["spend"].sum().sort_values().tolist() == [20, 40], tokens.loc[0, "email"][:16] + "...")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import Story

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    os.environ["PIPESHIELD_HOME"] = str(OUT / "home")
    demo_story = Story()
    envelope_story(demo_story)
    sys.exit(demo_story.finish())
