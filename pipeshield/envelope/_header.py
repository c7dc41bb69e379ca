"""The envelope header: byte layout, parsing with hard bounds, and the key schedule.

Layout (integers big-endian; see ``docs/envelope-format.md``)::

    magic 8 | header_len 4 | version 1 | alg 1 | log2_chunk 1
    | key_ref_len 2 | key_ref | key_version 4 | wrapped_len 2 | wrapped
    | context_len 2 | context | salt 32 | nonce_prefix 7
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import struct
from collections.abc import Mapping
from typing import IO, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeshield.envelope._errors import (
    MalformedHeaderError,
    NotAnEnvelopeError,
    UnsupportedEnvelopeError,
)

MAGIC = b"PSHLDENC"
FORMAT_VERSION = 1
ALG_AES256GCM_HKDF_SHA256 = 1
MIN_LOG2_CHUNK, MAX_LOG2_CHUNK, DEFAULT_LOG2_CHUNK = 16, 24, 20
DEFAULT_CHUNK_SIZE = 1 << DEFAULT_LOG2_CHUNK
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
MAX_CHUNKS = 2**32 - 1
MAX_KEY_REF = 512
MAX_WRAPPED = 8192
MAX_CONTEXT = 16384
MAX_HEADER = 65536
HKDF_INFO_LABEL = b"pipeshield-envelope-v1"

_FIXED = struct.Struct(">8sIBBB")  # magic, header_len, version, alg, log2_chunk
_WRAPPED_PREFIX = re.compile(r"^vault:v(\d{1,9}):")

Context = bytes | str | Mapping[str, Any]
"""What an envelope is bound to: raw bytes, text, or a mapping (stored as canonical JSON)."""


def canonical_context(context: Context) -> bytes:
    """The exact bytes a context is bound as: UTF-8 for text, sorted compact JSON for mappings."""
    if isinstance(context, bytes | bytearray | memoryview):
        data = bytes(context)
    elif isinstance(context, str):
        data = context.encode("utf-8")
    elif isinstance(context, Mapping):
        data = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    else:
        raise TypeError(f"context must be bytes, str or a mapping, not {type(context).__name__}")
    if len(data) > MAX_CONTEXT:
        raise MalformedHeaderError(f"context is {len(data)} bytes; the format allows at most {MAX_CONTEXT}")
    return data


def log2_chunk_size(chunk_size: int) -> int:
    """The exponent of a supported chunk size (a power of two from 64 KiB to 16 MiB)."""
    exponent = chunk_size.bit_length() - 1
    if chunk_size <= 0 or 1 << exponent != chunk_size or not MIN_LOG2_CHUNK <= exponent <= MAX_LOG2_CHUNK:
        raise UnsupportedEnvelopeError(
            f"chunk size {chunk_size} is not supported: use a power of two from "
            f"{1 << MIN_LOG2_CHUNK} to {1 << MAX_LOG2_CHUNK} bytes"
        )
    return exponent


def wrapped_key_version(wrapped: str) -> int:
    """N of a ``vault:vN:`` wrapped key (v0 counts as v1, as in Vault)."""
    match = _WRAPPED_PREFIX.match(wrapped)
    if not match:
        raise MalformedHeaderError("wrapped data key has no 'vault:vN:' prefix")
    return max(int(match.group(1)), 1)


@dataclasses.dataclass(frozen=True)
class Header:
    """A parsed or new envelope header. Holds no key material (the data key is wrapped)."""

    key_name: str
    key_version: int
    wrapped_key: str = dataclasses.field(repr=False)
    context: bytes
    salt: bytes = dataclasses.field(repr=False)
    nonce_prefix: bytes = dataclasses.field(repr=False)
    log2_chunk: int = DEFAULT_LOG2_CHUNK
    version: int = FORMAT_VERSION
    alg: int = ALG_AES256GCM_HKDF_SHA256

    @classmethod
    def new(cls, *, key_name: str, wrapped_key: str, context: bytes, log2_chunk: int) -> Header:
        """A header with a fresh random salt and nonce prefix."""
        return cls(
            key_name=key_name,
            key_version=wrapped_key_version(wrapped_key),
            wrapped_key=wrapped_key,
            context=context,
            salt=secrets.token_bytes(SALT_SIZE),
            nonce_prefix=secrets.token_bytes(NONCE_PREFIX_SIZE),
            log2_chunk=log2_chunk,
        )

    @property
    def chunk_size(self) -> int:
        return 1 << self.log2_chunk

    def with_wrapped_key(self, wrapped_key: str) -> Header:
        """The same header with the data key wrapped anew (after rotation): nothing else changes."""
        return dataclasses.replace(self, wrapped_key=wrapped_key, key_version=wrapped_key_version(wrapped_key))

    def to_bytes(self) -> bytes:
        key_ref = self.key_name.encode("utf-8")
        wrapped = self.wrapped_key.encode("ascii")
        if len(key_ref) > MAX_KEY_REF or len(wrapped) > MAX_WRAPPED or len(self.context) > MAX_CONTEXT:
            raise MalformedHeaderError("key name, wrapped key or context is longer than the format allows")
        body = b"".join((
            struct.pack(">H", len(key_ref)), key_ref,
            struct.pack(">I", self.key_version),
            struct.pack(">H", len(wrapped)), wrapped,
            struct.pack(">H", len(self.context)), self.context,
            self.salt, self.nonce_prefix,
        ))
        return _FIXED.pack(MAGIC, _FIXED.size + len(body), self.version, self.alg, self.log2_chunk) + body

    def bound_digest(self) -> bytes:
        """SHA-256 of the header fields bound into the object key.

        Excludes ``header_len``, ``key_version`` and ``wrapped`` (a rewrap changes them without
        touching the data), and ``salt``/``nonce_prefix`` (bound as HKDF salt and through every nonce).
        """
        key_ref = self.key_name.encode("utf-8")
        return hashlib.sha256(b"".join((
            MAGIC, bytes((self.version, self.alg, self.log2_chunk)),
            struct.pack(">H", len(key_ref)), key_ref,
            struct.pack(">H", len(self.context)), self.context,
        ))).digest()

    def object_key(self, data_key: bytes) -> bytes:
        """K_obj = HKDF-SHA256(ikm=data key, salt=salt, info=label || SHA-256(bound header fields))."""
        if len(data_key) != 32:
            raise MalformedHeaderError(f"the provider returned a {len(data_key)}-byte data key; expected 32")
        hkdf = HKDF(hashes.SHA256(), 32, self.salt, HKDF_INFO_LABEL + self.bound_digest())
        return hkdf.derive(data_key)

    def nonce(self, index: int, last: bool) -> bytes:
        """nonce_i = nonce_prefix(7) || uint32_be(i) || (0x01 for the final chunk else 0x00)."""
        return self.nonce_prefix + struct.pack(">IB", index, 1 if last else 0)

    def describe(self) -> dict[str, Any]:
        """Public facts for ``inspect``: no key material (the wrapped key is shown only as a fingerprint)."""
        try:
            context: Any = self.context.decode("utf-8")
        except UnicodeDecodeError:
            context = "hex:" + self.context.hex()
        return {
            "format": f"pipeshield envelope v{self.version}",
            "algorithm": "AES-256-GCM, HKDF-SHA-256" if self.alg == ALG_AES256GCM_HKDF_SHA256 else self.alg,
            "chunk_size": self.chunk_size,
            "key_name": self.key_name,
            "key_version": self.key_version,
            "wrapped_key_sha256": hashlib.sha256(self.wrapped_key.encode("ascii")).hexdigest()[:16],
            "context": context,
            "header_size": len(self.to_bytes()),
        }


def read_header(stream: IO[bytes]) -> Header:
    """Read and validate a header from the start of ``stream``; reads nothing past the header."""
    fixed = _read_exact(stream, _FIXED.size)
    if not fixed:
        raise NotAnEnvelopeError("not a pipeshield envelope: the input is empty")
    if not (fixed.startswith(MAGIC) or MAGIC.startswith(fixed)):
        raise NotAnEnvelopeError("not a pipeshield envelope: the magic bytes 'PSHLDENC' are missing")
    if len(fixed) < _FIXED.size:
        raise MalformedHeaderError(f"header truncated: only {len(fixed)} bytes present")
    _, header_len, version, alg, log2_chunk = _FIXED.unpack(fixed)
    if version != FORMAT_VERSION:
        raise UnsupportedEnvelopeError(f"envelope format version {version} is not supported (this reader: 1)")
    if alg != ALG_AES256GCM_HKDF_SHA256:
        raise UnsupportedEnvelopeError(f"envelope algorithm {alg} is not supported (this reader: 1 = AES-256-GCM)")
    if not MIN_LOG2_CHUNK <= log2_chunk <= MAX_LOG2_CHUNK:
        raise UnsupportedEnvelopeError(
            f"chunk size 2^{log2_chunk} is outside the allowed 2^{MIN_LOG2_CHUNK}..2^{MAX_LOG2_CHUNK}"
        )
    if not _FIXED.size < header_len <= MAX_HEADER:
        raise MalformedHeaderError(f"header length field claims {header_len} bytes; allowed up to {MAX_HEADER}")
    rest = _read_exact(stream, header_len - _FIXED.size)
    if len(rest) != header_len - _FIXED.size:
        raise MalformedHeaderError(f"header truncated: {_FIXED.size + len(rest)} of {header_len} bytes present")
    fields = _Fields(rest)
    key_ref = fields.take_sized(MAX_KEY_REF, "key reference")
    key_version = fields.take_uint32("key version")
    wrapped = fields.take_sized(MAX_WRAPPED, "wrapped data key")
    context = fields.take_sized(MAX_CONTEXT, "context")
    salt = fields.take(SALT_SIZE, "salt")
    nonce_prefix = fields.take(NONCE_PREFIX_SIZE, "nonce prefix")
    if fields.remaining:
        raise MalformedHeaderError(f"header has {fields.remaining} unexpected bytes after its last field")
    try:
        key_name = key_ref.decode("utf-8")
        wrapped_text = wrapped.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedHeaderError("key reference or wrapped data key is not valid text") from None
    if not key_name:
        raise MalformedHeaderError("key reference is empty")
    if wrapped_key_version(wrapped_text) != key_version:
        raise MalformedHeaderError(
            f"header key version {key_version} does not match the wrapped data key "
            f"(vault:v{wrapped_key_version(wrapped_text)}): the header was altered"
        )
    return Header(key_name, key_version, wrapped_text, context, salt, nonce_prefix, log2_chunk, version, alg)


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at end of stream."""
    chunks = []
    remaining = size
    while remaining:
        data = stream.read(remaining)
        if not data:
            break
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


class _Fields:
    """Cursor over the variable part of a header; every read is bounds-checked."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise MalformedHeaderError(
                f"header field {what} needs {size} bytes but only {self.remaining} remain in the header"
            )
        out = self._data[self._pos : self._pos + size]
        self._pos += size
        return out

    def take_uint32(self, what: str) -> int:
        return int(struct.unpack(">I", self.take(4, what))[0])

    def take_sized(self, limit: int, what: str) -> bytes:
        (size,) = struct.unpack(">H", self.take(2, f"{what} length"))
        if size > limit:
            raise MalformedHeaderError(f"header field {what} claims {size} bytes; the format allows at most {limit}")
        return self.take(size, what)
