"""Sign and verify model directories in the OpenSSF model-signing (OMS) format, with bindings and an ML-BOM.

>>> from pipeshield.keys import open_key_provider
>>> from pipeshield.signing import ModelBindings, TrustedKeys, sign_model, verify_model
>>> provider = open_key_provider()
>>> signed = sign_model("model/", provider, "pipeshield-signing", ModelBindings(name="churn", run_id="abc"))
>>> result = verify_model("model/", TrustedKeys.from_provider(provider, "pipeshield-signing"),
...                       expected=ModelBindings(name="churn"))
>>> result.ok, result.reason

What a signed directory holds (names are constants of this module):

- :data:`SIGNATURE_FILE` ``pipeshield.sig``: Sigstore bundle v0.3 → DSSE envelope → in-toto statement with
  predicate ``https://model_signing/signature/v1.0``, one SHA-256 per file, ECDSA P-256 by the
  ``KeyProvider`` (the private key never leaves it). The stock ``model_signing`` verifier accepts it:
  ``verifying.Config().use_elliptic_key_verifier(public_key=PEM).verify(model_dir, model_dir / SIGNATURE_FILE)``.
- :data:`BINDINGS_FILE` ``pipeshield.bindings.json``: the :class:`ModelBindings`; signed as a model file.
- :data:`BOM_FILE` ``pipeshield.bom.json``: CycloneDX 1.6 ML-BOM; signed as a model file.

Binding the registry version: the registry assigns a version number only when the version is created.
A caller that wants it bound signs with the *expected next* version (``ModelBindings(version=N)``) and
lets the registry refuse a version whose signed number differs; otherwise it leaves ``version`` unset.
When ``expected.version`` is set, a signature without that exact version fails.
"""

from __future__ import annotations

import os

from pipeshield.keys import KeyProvider
from pipeshield.scan import ScanPolicy
from pipeshield.signing import _sign, _verify
from pipeshield.signing._bindings import ArtifactDigest, ModelBindings
from pipeshield.signing._files import ProgressCallback
from pipeshield.signing._names import BINDINGS_FILE, BOM_FILE, RESERVED_FILES, SIGNATURE_FILE
from pipeshield.signing._oms import PREDICATE_TYPE
from pipeshield.signing._results import SignedContents, SignedModel, VerificationResult
from pipeshield.signing._trust import TrustedKeys
from pipeshield.signing.policy import AllOf, BindingsMatch, KeyVersionAtLeast, Policy

__all__ = [
    "BINDINGS_FILE",
    "BOM_FILE",
    "PREDICATE_TYPE",
    "RESERVED_FILES",
    "SIGNATURE_FILE",
    "AllOf",
    "ArtifactDigest",
    "BindingsMatch",
    "KeyVersionAtLeast",
    "ModelBindings",
    "Policy",
    "ProgressCallback",
    "ScanPolicy",
    "SignedContents",
    "SignedModel",
    "TrustedKeys",
    "VerificationResult",
    "copy_verified",
    "sign_model",
    "verify_model",
    "verify_or_raise",
]


def sign_model(model_dir: str | os.PathLike[str], provider: KeyProvider, key_name: str, bindings: ModelBindings,
               *, workers: int | None = None, progress: ProgressCallback | None = None,
               scan_policy: ScanPolicy | None = None) -> SignedModel:
    """Scan, hash and sign every file of ``model_dir``; write the signature, bindings and ML-BOM into it.

    Order: refuse unsafe paths (symlinks leaving the directory or to directories, traversal names,
    special files) → picklescan in strict mode with ``scan_policy``'s allow-list and budgets
    (``UnsafeModelError``, nothing written) → SHA-256 of each file, ``workers`` files in parallel
    (default: one per CPU), ``progress(nbytes)`` as bytes are hashed → ML-BOM and bindings → OMS
    statement signed by ``provider.sign_digest`` with the latest version of ``key_name`` (ECDSA P-256)
    → the three files written atomically. Existing pipeshield files in the directory are replaced.
    ``bindings.name`` is required.
    """
    return _sign.sign_model(model_dir, provider, key_name, bindings, workers=workers, progress=progress,
                            scan_policy=scan_policy)


def verify_model(model_dir: str | os.PathLike[str], keys: TrustedKeys, *, expected: ModelBindings | None = None,
                 policy: Policy | None = None, workers: int | None = None,
                 progress: ProgressCallback | None = None) -> VerificationResult:
    """Verify ``model_dir`` against its :data:`SIGNATURE_FILE`; never raises for a bad model.

    Checks, in order, each failure returning a result whose ``reason`` names the file or binding:
    bundle format → key (by the bundle's public-key hint among ``keys``; a retired version is refused)
    → ECDSA signature → statement (OMS v1.0, files/sha256) → every file re-hashed: changed, added
    or missing files → bindings and ML-BOM consistent with the signed files → ``expected`` bindings
    (:class:`BindingsMatch`) → ``policy``. Use ``keys = TrustedKeys.from_provider(provider, name)`` or
    ``TrustedKeys.from_pem(pem)``.
    """
    return _verify.verify_model(model_dir, keys, expected=expected, policy=policy, workers=workers,
                                progress=progress)


def verify_or_raise(model_dir: str | os.PathLike[str], keys: TrustedKeys, *, expected: ModelBindings | None = None,
                    policy: Policy | None = None, workers: int | None = None,
                    progress: ProgressCallback | None = None) -> SignedContents:
    """:func:`verify_model`, raising a ``SignatureError`` subclass on failure (``SignatureFormatError``,
    ``UntrustedSignatureError``, ``ModelIntegrityError``, ``BindingMismatchError``); returns what was verified."""
    return _verify.verify_or_raise(model_dir, keys, expected=expected, policy=policy, workers=workers,
                                   progress=progress)


def copy_verified(model_dir: str | os.PathLike[str], dest: str | os.PathLike[str], keys: TrustedKeys, *,
                  expected: ModelBindings | None = None, policy: Policy | None = None, workers: int | None = None,
                  progress: ProgressCallback | None = None) -> SignedContents:
    """Copy ``model_dir`` into the new directory ``dest`` and verify the copy (as :func:`verify_or_raise`).

    The deploy path should load the model from ``dest`` only: it is exactly what was verified, whatever
    happens to ``model_dir`` afterwards. On failure ``dest`` is removed and the ``SignatureError`` raised.
    """
    return _verify.copy_verified(model_dir, dest, keys, expected=expected, policy=policy, workers=workers,
                                 progress=progress)
