"""Demo story: the key layer on Vault Transit, with a least-privilege AppRole per stage.

Uses the in-repo Vault emulator (``tests/vault_emulator``), so it runs without a Vault binary.
``vault_story(story)`` plugs into ``scripts/demo.py``; ``python scripts/demo_vault.py`` runs it alone.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vault_story(story) -> None:  # type: ignore[no-untyped-def]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import hvac

    from pipeshield.errors import PermissionDeniedError
    from pipeshield.keys import KeyType, VaultTransitKeyProvider
    from pipeshield.keys._vault_auth import AppRoleAuth, TokenAuth
    from tests.vault_emulator import VaultEmulator

    story.section("Key layer on Vault Transit (emulated Vault, AppRole per stage)")
    with VaultEmulator() as vault:
        admin = hvac.Client(vault.address, token=vault.root_token)
        admin.sys.enable_secrets_engine("transit", path="transit")
        admin.sys.enable_auth_method("approle")
        with VaultTransitKeyProvider(vault.address, TokenAuth(vault.root_token)) as keys:
            keys.create_key("pipeshield-data")
            keys.create_key("pipeshield-signing", KeyType.ECDSA_P256)
        admin.sys.create_or_update_acl_policy("stage-train", """
path "transit/keys/pipeshield-data" { capabilities = ["read"] }
path "transit/datakey/plaintext/pipeshield-data" { capabilities = ["update"] }
path "transit/decrypt/pipeshield-data" { capabilities = ["update"] }
""")
        admin.auth.approle.create_or_update_approle("train", token_policies=["stage-train"], token_ttl="15m")
        role_id = admin.auth.approle.read_role_id("train")["data"]["role_id"]
        secret_id = admin.auth.approle.generate_secret_id("train")["data"]["secret_id"]

        with VaultTransitKeyProvider(vault.address, AppRoleAuth(role_id, secret_id), stage="train") as train:
            data_key = train.generate_data_key("pipeshield-data")
            story.check("the train stage gets a data key from Vault", len(data_key.plaintext) == 32,
                        data_key.wrapped[:12] + "...")
            story.check("and unwraps it", train.unwrap("pipeshield-data", data_key.wrapped) == data_key.plaintext)
            try:
                train.sign_digest("pipeshield-signing", hashlib.sha256(b"model").digest())
                denied = ""
            except PermissionDeniedError as exc:
                denied = str(exc)
            story.check("signing is refused to the train stage, naming the Vault path",
                        "transit/sign/pipeshield-signing" in denied, denied)
            token = train._client.token
        story.check("its login token is revoked when the stage ends",
                    not hvac.Client(vault.address, token=token).is_authenticated())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import Story

    demo_story = Story()
    vault_story(demo_story)
    sys.exit(demo_story.finish())
