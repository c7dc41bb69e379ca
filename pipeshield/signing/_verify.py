"""``verify_model``: check the signature, re-hash every file, then the bindings, the BOM and the policies."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pipeshield.bom import bom_model_digest
from pipeshield.errors import ModelIntegrityError, ModelPathError, SignatureFormatError
from pipeshield.signing import _oms
from pipeshield.signing._bindings import ModelBindings, parse_bindings_document
from pipeshield.signing._files import (
    GIT_PATHS,
    ProgressCallback,
    check_relative_name,
    hash_files,
    list_model_files,
    root_digest,
)
from pipeshield.signing._names import BINDINGS_FILE, BOM_FILE, SIGNATURE_FILE
from pipeshield.signing._results import SignedContents, VerificationResult
from pipeshield.signing._trust import TrustedKeys
from pipeshield.signing.policy import AllOf, BindingsMatch, Policy

_SIDECARS = (BINDINGS_FILE, BOM_FILE)


def verify_model(model_dir: str | os.PathLike[str], keys: TrustedKeys, *, expected: ModelBindings | None = None,
                 policy: Policy | None = None, workers: int | None = None,
                 progress: ProgressCallback | None = None) -> VerificationResult:
    root = Path(model_dir)
    sig_path = root / SIGNATURE_FILE
    if sig_path.is_symlink() or not sig_path.is_file():
        return VerificationResult.failure("signature", f"no signature file {SIGNATURE_FILE!r} in {str(root)!r}",
                                          SIGNATURE_FILE)
    try:
        envelope = _oms.read_bundle(sig_path)
    except SignatureFormatError as exc:
        return VerificationResult.failure("format", str(exc), SIGNATURE_FILE)

    found = keys.lookup(envelope.hint)
    if found is None:
        return VerificationResult.failure(
            "signature", f"{SIGNATURE_FILE!r} was not made by any trusted version of key {keys.key_name!r}",
            SIGNATURE_FILE)
    key_version, public_key = found
    if key_version < keys.min_version:
        return VerificationResult.failure(
            "signature", f"{SIGNATURE_FILE!r} was made with key {keys.key_name!r} v{key_version}, which is retired "
                         f"(versions below {keys.min_version} are refused)", SIGNATURE_FILE)
    try:
        public_key.verify(envelope.signature_der, envelope.signed_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return VerificationResult.failure(
            "signature", f"{SIGNATURE_FILE!r}: the ECDSA signature does not match the signed statement", SIGNATURE_FILE)

    try:
        manifest = _oms.decode_statement(envelope.payload)
        for name in manifest.digests:
            check_relative_name(name)
    except (SignatureFormatError, ModelPathError) as exc:
        return VerificationResult.failure("format", f"{SIGNATURE_FILE!r}: {exc}", SIGNATURE_FILE)
    ignore = [str(p) for p in manifest.serialization.get("ignore_paths", [])]
    if SIGNATURE_FILE not in ignore or any(name in ignore for name in _SIDECARS):
        return VerificationResult.failure("format", f"{SIGNATURE_FILE!r} was not made by pipeshield "
                                                    "(unexpected ignore_paths)", SIGNATURE_FILE)
    for name in _SIDECARS:
        if name not in manifest.digests:
            return VerificationResult.failure("format", f"the signature does not cover {name!r}", name)

    outcome = _check_files(root, manifest, ignore, workers, progress)
    if isinstance(outcome, VerificationResult):
        return outcome
    sidecars = outcome

    try:
        bindings, content_digest = parse_bindings_document(sidecars[BINDINGS_FILE])
    except SignatureFormatError as exc:
        return VerificationResult.failure("format", f"{BINDINGS_FILE!r}: {exc}", BINDINGS_FILE)
    model_digests = {n: d for n, d in manifest.digests.items() if n not in _SIDECARS}
    if root_digest(model_digests) != content_digest:
        return VerificationResult.failure("format", f"{BINDINGS_FILE!r} names a content digest that does not match "
                                                    "the signed files", BINDINGS_FILE)
    if bom_model_digest(sidecars[BOM_FILE]) != content_digest:
        return VerificationResult.failure("format", f"{BOM_FILE!r} does not describe the signed model files", BOM_FILE)

    contents = SignedContents(path=root, bindings=bindings, root_digest=manifest.root_digest,
                              content_digest=content_digest, key_name=keys.key_name, key_version=key_version,
                              files=tuple(sorted(manifest.digests)))
    policies = [p for p in (BindingsMatch(expected) if expected else None, policy) if p is not None]
    result = AllOf(*policies).check(contents)
    if not result:
        return result
    return VerificationResult.success(
        f"model {bindings.name!r} verified: {len(manifest.digests)} files, signed with key "
        f"{keys.key_name!r} v{key_version}", contents)


def verify_or_raise(model_dir: str | os.PathLike[str], keys: TrustedKeys, *, expected: ModelBindings | None = None,
                    policy: Policy | None = None, workers: int | None = None,
                    progress: ProgressCallback | None = None) -> SignedContents:
    result = verify_model(model_dir, keys, expected=expected, policy=policy, workers=workers, progress=progress)
    result.raise_for_failure()
    assert result.contents is not None
    return result.contents


def _check_files(root: Path, manifest: _oms.SignedManifest, ignore: list[str], workers: int | None,
                 progress: ProgressCallback | None) -> VerificationResult | dict[str, bytes]:
    """Re-hash the directory and compare with the signed manifest; returns the sidecar files' bytes."""
    try:
        files, has_symlinks = list_model_files(root, list(ignore) + list(GIT_PATHS))
    except ModelPathError as exc:
        return VerificationResult.failure("integrity", str(exc))
    if has_symlinks and not manifest.serialization.get("allow_symlinks"):
        link = next(n for n, p in sorted(files.items()) if p.is_symlink())
        return VerificationResult.failure("integrity", f"file {link!r} is a symlink; the model was signed without any",
                                          link)
    sidecars: dict[str, bytes] = {}
    for name in _SIDECARS:  # read once, then hash and parse the same bytes
        if name in files:
            sidecars[name] = files.pop(name).read_bytes()
    actual = hash_files(files, workers=workers, progress=progress)
    actual.update({n: hashlib.sha256(b).digest() for n, b in sidecars.items()})

    signed = manifest.digests
    changed = sorted(n for n in signed.keys() & actual.keys() if signed[n] != actual[n])
    added = sorted(actual.keys() - signed.keys())
    missing = sorted(signed.keys() - actual.keys())
    if changed or added or missing:
        parts = [f"{label}: {', '.join(repr(n) for n in names)}"
                 for label, names in (("changed", changed), ("added", added), ("missing", missing)) if names]
        first = (changed or added or missing)[0]
        return VerificationResult.failure("integrity", "model files differ from the signature: " + "; ".join(parts),
                                          first)
    return sidecars


def copy_verified(model_dir: str | os.PathLike[str], dest: str | os.PathLike[str], keys: TrustedKeys, *,
                  expected: ModelBindings | None = None, policy: Policy | None = None, workers: int | None = None,
                  progress: ProgressCallback | None = None) -> SignedContents:
    """Copy ``model_dir`` to the new directory ``dest``, then verify the copy: what is loaded afterwards from
    ``dest`` is exactly what was verified, whatever happens to ``model_dir``. On failure ``dest`` is removed
    and the ``SignatureError`` raised."""
    source, target = Path(model_dir), Path(dest)
    try:
        files, _ = list_model_files(source, GIT_PATHS)
    except ModelPathError as exc:
        raise ModelIntegrityError(str(exc)) from None
    target.mkdir(mode=0o700)
    try:
        for name, path in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / name)  # symlinks inside the model become plain copies
        return verify_or_raise(target, keys, expected=expected, policy=policy, workers=workers, progress=progress)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
