"""Errors of the envelope format. Each names its cause; none carries key material or plaintext."""

from __future__ import annotations

from pipeshield.errors import PipeshieldError


class EnvelopeError(PipeshieldError):
    """An envelope could not be written, read or verified."""


class NotAnEnvelopeError(EnvelopeError):
    """The bytes do not start with the envelope magic: not a pipeshield envelope (or encrypted twice)."""


class UnsupportedEnvelopeError(EnvelopeError):
    """The envelope uses a format version, algorithm or chunk size this reader does not support."""


class MalformedHeaderError(EnvelopeError):
    """The header is truncated, claims impossible lengths or has inconsistent fields."""


class ContextMismatchError(EnvelopeError):
    """The envelope was bound to another context (e.g. another run or artifact path)."""


class EnvelopeKeyError(EnvelopeError):
    """The key provider could not release the data key of this envelope."""


class KeyMismatchError(EnvelopeKeyError):
    """The envelope is wrapped under another key than the caller expects."""


class KeyVersionRefusedError(EnvelopeKeyError):
    """The data key is wrapped under a key version the provider refuses (retired or unknown)."""


class UnwrapError(EnvelopeKeyError):
    """The provider failed to unwrap the data key: wrong key, or the wrapped key was altered."""


class IntegrityError(EnvelopeError):
    """A chunk failed authentication: the body or header was modified, reordered or cut."""


class TruncatedEnvelopeError(IntegrityError):
    """The stream ended before the final chunk."""


class TrailingDataError(IntegrityError):
    """Bytes follow the final chunk."""


class EnvelopeTooLargeError(EnvelopeError):
    """The plaintext needs more chunks than the nonce counter allows (2^32 - 1)."""
