"""Stream-level envelope operations: one key-provider call per object, memory bounded by the chunk size."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator
from typing import IO

from opentelemetry.trace import Span

from pipeshield.envelope._errors import (
    ContextMismatchError,
    EnvelopeKeyError,
    KeyMismatchError,
    KeyVersionRefusedError,
    UnwrapError,
)
from pipeshield.envelope._header import (
    DEFAULT_CHUNK_SIZE,
    Context,
    Header,
    canonical_context,
    log2_chunk_size,
    read_header,
)
from pipeshield.envelope._stream import Digest, Progress, open_body, read_full, seal
from pipeshield.errors import (
    InvalidWrappedKeyError,
    KeyNotFoundError,
    KeyVersionError,
    PermissionDeniedError,
    PipeshieldError,
)
from pipeshield.keys import KeyProvider
from pipeshield.lineage import lineage_span


@dataclasses.dataclass(frozen=True)
class EnvelopeResult:
    """What an encrypt or decrypt did: digests and sizes of both sides, and the wrapping key used.

    The digests are hex SHA-256 of the exact plaintext and envelope bytes (None unless ``digests=True``).
    """

    plaintext_sha256: str | None
    ciphertext_sha256: str | None
    plaintext_size: int
    ciphertext_size: int
    key_name: str
    key_version: int

    def as_dict(self) -> dict[str, str | int | None]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RewrapResult:
    """A rewrap: the data key moved from ``old_version`` to ``new_version``; the body is unchanged."""

    key_name: str
    old_version: int
    new_version: int
    ciphertext_sha256: str
    ciphertext_size: int


def encrypt_stream(
    src: IO[bytes], dst: IO[bytes], provider: KeyProvider, *, key_name: str, context: Context,
    chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None, digests: bool = False,
) -> EnvelopeResult:
    """Encrypt everything left in ``src`` into ``dst`` under a fresh data key wrapped by ``key_name``.

    ``context`` (e.g. ``{"run_id": ..., "artifact": ...}``) is bound into the object key; decryption
    must present the same context. ``digests=True`` also computes SHA-256 of the plaintext and of the
    envelope in the same pass (for lineage and audit records); each costs several times the CPU of
    AES-GCM, so they are off unless asked for.
    """
    bound = canonical_context(context)
    log2_chunk = log2_chunk_size(chunk_size)
    with lineage_span("envelope.encrypt", {"pipeshield.envelope.key_name": key_name}) as span:
        data_key = provider.generate_data_key(key_name)
        header = Header.new(key_name=key_name, wrapped_key=data_key.wrapped, context=bound, log2_chunk=log2_chunk)
        with _digest_pair(digests) as (plain_digest, cipher_digest):
            plain_size, cipher_size = seal(
                header, header.object_key(data_key.plaintext), src, dst, plain_digest, cipher_digest, progress
            )
            result = _result(header, plain_digest, cipher_digest, plain_size, cipher_size)
        _annotate(span, result, bound)
        return result


def decrypt_stream(
    src: IO[bytes], dst: IO[bytes], provider: KeyProvider, *, context: Context,
    key_name: str | None = None, progress: Progress | None = None, digests: bool = False,
) -> EnvelopeResult:
    """Verify and decrypt an envelope from ``src`` into ``dst``.

    Each chunk reaches ``dst`` only after its tag verifies, but a stream consumer sees the verified
    chunks before the last one: treat ``dst`` as untrusted until this returns (the file functions
    do this for you with a temporary file). ``key_name``, when given, must match the header.
    ``digests=True`` reports SHA-256 of both sides, as for :func:`encrypt_stream`.
    """
    header = read_header(src)
    bound = canonical_context(context)
    with lineage_span("envelope.decrypt", {"pipeshield.envelope.key_name": header.key_name}) as span:
        check_binding(header, bound, key_name)
        object_key = header.object_key(_unwrap(provider, header))
        header_bytes = header.to_bytes()
        with _digest_pair(digests) as (plain_digest, cipher_digest):
            cipher_digest.update(header_bytes, background=False)
            plain_size = open_body(header, object_key, src, dst, plain_digest, cipher_digest, progress)
            cipher_size = len(header_bytes) + plain_size + _tags(plain_size, header.chunk_size)
            result = _result(header, plain_digest, cipher_digest, plain_size, cipher_size)
        _annotate(span, result, bound)
        return result


def rewrap_stream(src: IO[bytes], dst: IO[bytes], provider: KeyProvider) -> RewrapResult:
    """Copy an envelope with its data key rewrapped under the latest key version; the body is copied as is.

    The provider never reveals the data key to the caller; no context is needed.
    """
    header = read_header(src)
    with lineage_span("envelope.rewrap", {"pipeshield.envelope.key_name": header.key_name}) as span:
        try:
            wrapped = provider.rewrap(header.key_name, header.wrapped_key)
        except (KeyVersionError, InvalidWrappedKeyError, KeyNotFoundError) as exc:
            raise _key_error(provider, header, exc, "rewrap") from None
        new_header = header.with_wrapped_key(wrapped)
        digest = hashlib.sha256()
        header_bytes = new_header.to_bytes()
        dst.write(header_bytes)
        digest.update(header_bytes)
        size = len(header_bytes)
        buffer = memoryview(bytearray(header.chunk_size))
        while count := read_full(src, buffer):
            dst.write(buffer[:count])
            digest.update(buffer[:count])
            size += count
        result = RewrapResult(header.key_name, header.key_version, new_header.key_version, digest.hexdigest(), size)
        span.set_attribute("pipeshield.envelope.old_key_version", result.old_version)
        span.set_attribute("pipeshield.envelope.key_version", result.new_version)
        span.set_attribute("pipeshield.envelope.ciphertext_sha256", result.ciphertext_sha256)
        return result


def check_binding(header: Header, context: bytes, key_name: str | None) -> None:
    """Refuse an envelope bound to another context, or wrapped under another key than expected."""
    if header.context != context:
        raise ContextMismatchError(
            "context mismatch: the envelope is bound to context "
            f"sha256:{hashlib.sha256(header.context).hexdigest()[:16]}, the caller expects "
            f"sha256:{hashlib.sha256(context).hexdigest()[:16]} (another run, artifact or dataset?)"
        )
    if key_name is not None and header.key_name != key_name:
        raise KeyMismatchError(
            f"the envelope is wrapped under key {header.key_name!r}, the caller expects key {key_name!r}"
        )


def _unwrap(provider: KeyProvider, header: Header) -> bytes:
    try:
        return provider.unwrap(header.key_name, header.wrapped_key)
    except (KeyVersionError, InvalidWrappedKeyError, KeyNotFoundError, PermissionDeniedError) as exc:
        raise _key_error(provider, header, exc, "unwrap") from None


def _key_error(provider: KeyProvider, header: Header, exc: Exception, action: str) -> EnvelopeKeyError:
    where = f"key {header.key_name!r} version {header.key_version}"
    if isinstance(exc, KeyVersionError):
        return KeyVersionRefusedError(
            f"cannot {action} the data key: it is wrapped under {where}, which the key provider refuses"
            f"{_version_status(provider, header)} ({exc}). Rewrap envelopes before raising min_decryption_version"
        )
    if isinstance(exc, KeyNotFoundError):
        return EnvelopeKeyError(f"cannot {action} the data key: the key provider has no key {header.key_name!r}")
    if isinstance(exc, PermissionDeniedError):
        return EnvelopeKeyError(f"cannot {action} the data key under {where}: {exc}")
    return UnwrapError(
        f"cannot {action} the data key under {where}: wrong key (another keyring or Vault?) "
        f"or the wrapped key in the header was altered ({exc})"
    )


def _version_status(provider: KeyProvider, header: Header) -> str:
    """Why a version is refused, from the key's public facts (asked only on this failure path)."""
    try:
        info = provider.key_info(header.key_name)
    except PipeshieldError:
        return ""
    if header.key_version < info.min_decryption_version:
        return f": version {header.key_version} is retired (min_decryption_version is {info.min_decryption_version})"
    if header.key_version > info.latest_version:
        return f": version {header.key_version} is unknown (latest is {info.latest_version})"
    return ""


def _tags(plain_size: int, chunk: int) -> int:
    chunks = max(1, -(-plain_size // chunk))
    return chunks * 16


def _annotate(span: Span, result: EnvelopeResult, context: bytes) -> None:
    set_attribute = span.set_attribute
    set_attribute("pipeshield.envelope.key_version", result.key_version)
    if result.plaintext_sha256 and result.ciphertext_sha256:
        set_attribute("pipeshield.envelope.plaintext_sha256", result.plaintext_sha256)
        set_attribute("pipeshield.envelope.ciphertext_sha256", result.ciphertext_sha256)
    set_attribute("pipeshield.envelope.plaintext_size", result.plaintext_size)
    set_attribute("pipeshield.envelope.ciphertext_size", result.ciphertext_size)
    set_attribute("pipeshield.envelope.context_sha256", hashlib.sha256(context).hexdigest())


@contextlib.contextmanager
def _digest_pair(enabled: bool) -> Iterator[tuple[Digest, Digest]]:
    """Plaintext and ciphertext digests, their background workers stopped however the block ends."""
    plain_digest, cipher_digest = Digest(enabled), Digest(enabled)
    try:
        yield plain_digest, cipher_digest
    finally:
        plain_digest.close()
        cipher_digest.close()


def _result(header: Header, plain_digest: Digest, cipher_digest: Digest, plain_size: int,
            cipher_size: int) -> EnvelopeResult:
    return EnvelopeResult(plain_digest.hexdigest(), cipher_digest.hexdigest(), plain_size, cipher_size,
                          header.key_name, header.key_version)
