"""Result types of signing and verification."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeshield.errors import (
    BindingMismatchError,
    ModelIntegrityError,
    SignatureError,
    SignatureFormatError,
    UntrustedSignatureError,
)
from pipeshield.signing._bindings import ModelBindings


@dataclasses.dataclass(frozen=True)
class SignedModel:
    """What :func:`sign_model` wrote and signed."""

    path: Path
    """The model directory."""
    signature_path: Path
    bindings: ModelBindings
    root_digest: str
    """OMS root digest (subject of the in-toto statement): covers every file, bindings and BOM included."""
    content_digest: str
    """Same computation over the model's own files only (without the bindings and the BOM); named in the ML-BOM."""
    key_name: str
    key_version: int
    files: tuple[str, ...]
    """Every signed file, POSIX paths relative to ``path``, sorted."""
    total_bytes: int


@dataclasses.dataclass(frozen=True)
class SignedContents:
    """What a verified signature vouches for: handed to each :class:`~pipeshield.signing.policy.Policy`."""

    path: Path
    bindings: ModelBindings
    root_digest: str
    content_digest: str
    key_name: str
    key_version: int
    files: tuple[str, ...]


#: failure kinds of :class:`VerificationResult` and the error :func:`VerificationResult.raise_for_failure` raises
FAILURE_ERRORS: dict[str, type[SignatureError]] = {
    "format": SignatureFormatError,
    "signature": UntrustedSignatureError,
    "integrity": ModelIntegrityError,
    "binding": BindingMismatchError,
}


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """Outcome of a verification step; falsy on failure.

    ``reason`` is a sentence naming the file or binding at fault; ``kind`` is one of ``format``,
    ``signature``, ``integrity``, ``binding`` on failure; ``subject`` the file or binding name.
    ``contents`` is set once the signature and the files have been verified.
    """

    ok: bool
    reason: str
    kind: str | None = None
    subject: str | None = None
    contents: SignedContents | None = None

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def success(cls, reason: str, contents: SignedContents | None = None) -> VerificationResult:
        return cls(True, reason, contents=contents)

    @classmethod
    def failure(cls, kind: str, reason: str, subject: str | None = None) -> VerificationResult:
        if kind not in FAILURE_ERRORS:
            raise ValueError(f"unknown failure kind {kind!r}")
        return cls(False, reason, kind=kind, subject=subject)

    def raise_for_failure(self) -> VerificationResult:
        """Return ``self`` when ok, else raise the ``SignatureError`` subclass matching ``kind``."""
        if self.ok:
            return self
        raise FAILURE_ERRORS[self.kind or "signature"](self.reason, self.subject)
