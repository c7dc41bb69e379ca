"""The chunk loops: seal and open an envelope body with preallocated buffers.

Memory is a fixed ring of chunk-sized buffers whatever the object size. SHA-256 of the plaintext and
of the ciphertext are computed in the same pass, on background threads once an object spans more
than one chunk (hashlib releases the GIL), so hashing overlaps with reading, AES-GCM and writing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeshield.envelope._errors import (
    EnvelopeTooLargeError,
    IntegrityError,
    TrailingDataError,
    TruncatedEnvelopeError,
)
from pipeshield.envelope._header import MAX_CHUNKS, TAG_SIZE, Header

Progress = Callable[[int], None]
"""Called with the number of plaintext bytes just processed."""

_RING = 3  # one buffer being filled (look-ahead), one being processed, one still being hashed


class Digest:
    """A SHA-256 fed in order; updates run on one background thread once ``background`` is asked for.

    A disabled digest ignores updates and has no value (for callers that do not need it).
    """

    def __init__(self, enabled: bool = True) -> None:
        self._hash = hashlib.sha256() if enabled else None
        self._pool: ThreadPoolExecutor | None = None

    def update(self, data: memoryview | bytes, background: bool) -> Future[None] | None:
        if self._hash is None:
            return None
        if self._pool is None and not background:
            self._hash.update(data)
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeshield-sha256")
        return self._pool.submit(self._hash.update, data)

    def hexdigest(self) -> str | None:
        """The digest once every queued update has run (None when disabled)."""
        self.close(cancel=False)
        return None if self._hash is None else self._hash.hexdigest()

    def close(self, cancel: bool = True) -> None:
        """Stop the background thread (dropping queued updates unless ``cancel`` is false)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None


class _Slot:
    """A preallocated buffer plus the hash jobs that still read it."""

    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)
        self.jobs: list[Future[None]] = []

    def reclaim(self) -> memoryview:
        for job in self.jobs:
            job.result()
        self.jobs.clear()
        return self.view

    def track(self, *jobs: Future[None] | None) -> None:
        self.jobs.extend(job for job in jobs if job is not None)


def read_full(stream: IO[bytes], view: memoryview) -> int:
    """Fill ``view`` from ``stream``; fewer bytes only at end of stream."""
    total = 0
    size = len(view)
    while total < size:
        count = stream.readinto(view[total:])  # type: ignore[attr-defined]
        if not count:
            break
        total += count
    return total


def seal(
    header: Header, object_key: bytes, src: IO[bytes], dst: IO[bytes],
    plain_digest: Digest, cipher_digest: Digest, progress: Progress | None = None,
) -> tuple[int, int]:
    """Write ``header`` and the encrypted chunks of ``src`` to ``dst``; returns (plaintext, ciphertext) sizes."""
    aead = AESGCM(object_key)
    chunk = header.chunk_size
    header_bytes = header.to_bytes()
    dst.write(header_bytes)
    cipher_digest.update(header_bytes, background=False)
    inputs = [_Slot(chunk) for _ in range(_RING)]
    outputs = [_Slot(chunk + TAG_SIZE) for _ in range(_RING)]
    plain_total, cipher_total = 0, len(header_bytes)
    count = read_full(src, inputs[0].view)
    index = 0
    while True:
        slot_in = inputs[index % _RING]
        following = 0
        if count == chunk:
            following = read_full(src, inputs[(index + 1) % _RING].reclaim())
        last = following == 0
        if index >= MAX_CHUNKS:
            raise EnvelopeTooLargeError(f"the plaintext needs more than {MAX_CHUNKS} chunks of {chunk} bytes")
        plain = slot_in.view[:count]
        slot_out = outputs[index % _RING]
        sealed = slot_out.reclaim()[: count + TAG_SIZE]
        aead.encrypt_into(header.nonce(index, last), plain, None, sealed)
        background = index > 0 or not last
        slot_in.track(plain_digest.update(plain, background))
        dst.write(sealed)
        slot_out.track(cipher_digest.update(sealed, background))
        plain_total += count
        cipher_total += count + TAG_SIZE
        if progress:
            progress(count)
        if last:
            return plain_total, cipher_total
        index += 1
        count = following


def open_body(
    header: Header, object_key: bytes, src: IO[bytes], dst: IO[bytes],
    plain_digest: Digest, cipher_digest: Digest, progress: Progress | None = None,
) -> int:
    """Decrypt the chunks after ``header`` into ``dst``; each chunk is written only after its tag verifies.

    Returns the plaintext size. Raises :class:`IntegrityError` (or a subclass naming the cause).
    """
    aead = AESGCM(object_key)
    chunk = header.chunk_size
    sealed_size = chunk + TAG_SIZE
    inputs = [_Slot(sealed_size) for _ in range(_RING)]
    outputs = [_Slot(chunk) for _ in range(_RING)]
    plain_total = 0
    count = read_full(src, inputs[0].view)
    index = 0
    while True:
        slot_in = inputs[index % _RING]
        following = 0
        if count == sealed_size:
            following = read_full(src, inputs[(index + 1) % _RING].reclaim())
        last = following == 0
        if index >= MAX_CHUNKS:
            raise IntegrityError(f"the body has more than {MAX_CHUNKS} chunks, more than the format allows")
        sealed = slot_in.view[:count]
        slot_out = outputs[index % _RING]
        if count < TAG_SIZE:
            raise TruncatedEnvelopeError(_truncated_message(index, count))
        plain = slot_out.reclaim()[: count - TAG_SIZE]
        try:
            aead.decrypt_into(header.nonce(index, last), sealed, None, plain)
        except InvalidTag:
            raise _diagnose(aead, header, index, last, sealed, count == sealed_size) from None
        if last and count == TAG_SIZE and index > 0:
            raise IntegrityError(f"chunk {index} is an empty final chunk, which only an empty object may have")
        background = index > 0 or not last
        slot_in.track(cipher_digest.update(sealed, background))
        dst.write(plain)
        slot_out.track(plain_digest.update(plain, background))
        plain_total += len(plain)
        if progress:
            progress(len(plain))
        if last:
            return plain_total
        index += 1
        count = following


def _truncated_message(index: int, count: int) -> str:
    if index == 0 and count == 0:
        return "the envelope has a header but no chunks: it was truncated"
    return f"the envelope ends inside chunk {index} ({count} bytes, less than a tag): it was truncated"


def _diagnose(aead: AESGCM, header: Header, index: int, last: bool, sealed: memoryview, full: bool) -> IntegrityError:
    """Name the likely cause of a failed tag by trying the other final-chunk flag (never releases output)."""
    scratch = bytearray(len(sealed) - TAG_SIZE)
    try:
        aead.decrypt_into(header.nonce(index, not last), sealed, None, scratch)
    except InvalidTag:
        pass
    else:
        if last:
            return TruncatedEnvelopeError(
                f"the envelope ends after chunk {index}, which is not its final chunk: it was truncated"
            )
        return TrailingDataError(f"data follows the final chunk {index}: bytes were appended to the envelope")
    if index == 0:
        cause = "the header or the first chunk was altered, or the data key does not belong to this header"
    elif last and not full:
        cause = "the envelope was truncated inside this chunk, or the chunk was modified"
    else:
        cause = "the chunk was modified, or chunks were dropped, reordered or duplicated"
    return IntegrityError(f"chunk {index} failed authentication: {cause}")
