"""Demo story for signed models; the lead wires ``signing_story`` into ``scripts/demo.py``.

Run alone: ``python scripts/demo_signing.py`` (uses ./demo-output like the main demo).
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import OUT, Story  # noqa: E402


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def signing_story(story: Story) -> None:
    from pipeshield.config import Settings
    from pipeshield.errors import UnsafeModelError
    from pipeshield.keys import KeyType, open_key_provider
    from pipeshield.signing import BOM_FILE, SIGNATURE_FILE, ModelBindings, TrustedKeys, sign_model, verify_model

    story.section("Signed models (OMS format, bindings, ML-BOM)")
    settings = Settings.load()
    provider = open_key_provider(settings)
    provider.create_key(settings.signing_key, KeyType.ECDSA_P256)
    model = OUT / "signed-model"
    shutil.rmtree(model, ignore_errors=True)
    (model / "weights").mkdir(parents=True)
    for index in range(3):
        (model / "weights" / f"part-{index}.safetensors").write_bytes(os.urandom(1 << 20))
    (model / "requirements.txt").write_text("scikit-learn==1.5.0\n")

    signed = sign_model(model, provider, settings.signing_key, ModelBindings(name="churn", version=1, run_id="r1"))
    story.check("model signed by the key provider", (model / SIGNATURE_FILE).exists() and (model / BOM_FILE).exists(),
                f"root digest {signed.root_digest[:16]}..., key v{signed.key_version}")
    keys = TrustedKeys.from_provider(provider, settings.signing_key)
    story.check("verifies with the expected name and version",
                verify_model(model, keys, expected=ModelBindings(name="churn", version=1)).ok)

    from model_signing import verifying

    pem = OUT / "signing.pem"
    pem.write_text(provider.public_key_pem(settings.signing_key))
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=pem).verify(model, model / SIGNATURE_FILE)
        stock_ok, detail = True, "verifying.Config().use_elliptic_key_verifier"
    except ValueError as exc:
        stock_ok, detail = False, str(exc)
    story.check("the stock model_signing verifier accepts the bundle", stock_ok, detail)

    wrong = verify_model(model, keys, expected=ModelBindings(name="fraud"))
    story.check("served under another name: refused", not wrong.ok, wrong.reason)
    part = model / "weights" / "part-1.safetensors"
    data = bytearray(part.read_bytes())
    data[7] ^= 1
    part.write_bytes(bytes(data))
    tampered = verify_model(model, keys)
    story.check("one byte changed: refused, naming the file",
                not tampered.ok and tampered.subject == "weights/part-1.safetensors", tampered.reason)

    evil = OUT / "evil-model"
    shutil.rmtree(evil, ignore_errors=True)
    evil.mkdir()
    (evil / "model.pkl").write_bytes(pickle.dumps(_RunsACommand()))
    try:
        sign_model(evil, provider, settings.signing_key, ModelBindings(name="evil"))
        refused, reason = False, ""
    except UnsafeModelError as exc:
        refused, reason = True, str(exc)
    story.check("a pickle calling os.system is refused before signing",
                refused and not (evil / SIGNATURE_FILE).exists(), reason)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    os.environ.setdefault("PIPESHIELD_HOME", str(OUT / "home"))
    demo_story = Story()
    signing_story(demo_story)
    sys.exit(demo_story.finish())
