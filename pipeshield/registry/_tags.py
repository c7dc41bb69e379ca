"""The model-version tags that record a signature in the registry, and the rules that protect them.

Every tag whose key starts with :data:`TAG_PREFIX` is immutable in the ``signed+*`` registry store: it is
written once, with the version, and never set or deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeshield.signing import PREDICATE_TYPE, SignedContents, SignedModel

TAG_PREFIX = "pipeshield."
ROOT_DIGEST_TAG = "pipeshield.signature.root_digest"
"""OMS root digest over every signed file (model files, bindings and ML-BOM)."""
KEY_TAG = "pipeshield.signature.key"
KEY_VERSION_TAG = "pipeshield.signature.key_version"
FORMAT_TAG = "pipeshield.signature.format"
SIGNATURE_TAGS = (ROOT_DIGEST_TAG, KEY_TAG, KEY_VERSION_TAG, FORMAT_TAG)


def signature_tags(signed: SignedModel | SignedContents) -> dict[str, str]:
    """The tags a signed version is registered with."""
    return {
        ROOT_DIGEST_TAG: signed.root_digest,
        KEY_TAG: signed.key_name,
        KEY_VERSION_TAG: str(signed.key_version),
        FORMAT_TAG: PREDICATE_TYPE,
    }


def is_protected_tag(key: str) -> bool:
    """True for tags the signed store never lets anyone set or delete after registration."""
    return key.startswith(TAG_PREFIX)


def has_signature_tags(tags: Mapping[str, str]) -> bool:
    return ROOT_DIGEST_TAG in tags


def tag_mismatch(tags: Mapping[str, str], contents: SignedContents) -> str | None:
    """None when ``tags`` record exactly the verified signature, else a sentence naming the tag at fault."""
    for key, want in signature_tags(contents).items():
        have = tags.get(key)
        if have is None:
            return f"tag {key!r} is missing"
        if have != want:
            return f"tag {key!r} is {have!r} but the verified signature has {want!r}"
    return None
