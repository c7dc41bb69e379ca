"""Envelope encryption: a chunked streaming AEAD format with data keys from a :class:`~pipeshield.keys.KeyProvider`.

>>> from pipeshield.envelope import encrypt_file, decrypt_file
>>> result = encrypt_file("train.parquet", "train.parquet.pse", provider,
...                       key_name="pipeshield-data", context={"dataset": "train"})
>>> decrypt_file("train.parquet.pse", "train.parquet", provider, context={"dataset": "train"})

One provider call per object (``generate_data_key`` to encrypt, ``unwrap`` to decrypt, ``rewrap``
after rotation); 1 MiB AES-256-GCM chunks under a per-object HKDF key bound to the header and the
context. The format is specified in ``docs/envelope-format.md``.
"""

from __future__ import annotations

from pipeshield.envelope._api import (
    EnvelopeResult,
    RewrapResult,
    decrypt_stream,
    encrypt_stream,
    rewrap_stream,
)
from pipeshield.envelope._errors import (
    ContextMismatchError,
    EnvelopeError,
    EnvelopeKeyError,
    EnvelopeTooLargeError,
    IntegrityError,
    KeyMismatchError,
    KeyVersionRefusedError,
    MalformedHeaderError,
    NotAnEnvelopeError,
    TrailingDataError,
    TruncatedEnvelopeError,
    UnsupportedEnvelopeError,
    UnwrapError,
)
from pipeshield.envelope._files import decrypt_file, encrypt_file, inspect_file, rewrap_file
from pipeshield.envelope._header import DEFAULT_CHUNK_SIZE, MAGIC, Context, Header, canonical_context, read_header

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAGIC",
    "Context",
    "ContextMismatchError",
    "EnvelopeError",
    "EnvelopeKeyError",
    "EnvelopeResult",
    "EnvelopeTooLargeError",
    "Header",
    "IntegrityError",
    "KeyMismatchError",
    "KeyVersionRefusedError",
    "MalformedHeaderError",
    "NotAnEnvelopeError",
    "RewrapResult",
    "TrailingDataError",
    "TruncatedEnvelopeError",
    "UnsupportedEnvelopeError",
    "UnwrapError",
    "canonical_context",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_file",
    "encrypt_stream",
    "inspect_file",
    "read_header",
    "rewrap_file",
    "rewrap_stream",
]
