"""File-level envelope operations: output goes to a temporary file renamed into place only on success."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipeshield.envelope._api import (
    EnvelopeResult,
    RewrapResult,
    decrypt_stream,
    encrypt_stream,
    rewrap_stream,
)
from pipeshield.envelope._header import DEFAULT_CHUNK_SIZE, TAG_SIZE, Context, read_header
from pipeshield.envelope._stream import Progress
from pipeshield.errors import DestinationWriteError
from pipeshield.keys import KeyProvider

PathLike = str | os.PathLike[str]


# errors that say the destination cannot take the output (never raised by reading the source)
_DESTINATION_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def atomic_output(dst: PathLike, fsync: bool = False) -> Iterator[IO[bytes]]:
    """A temporary file (mode 0600) beside ``dst``, renamed onto ``dst`` only if the block succeeds.

    On any exception the temporary file is removed and ``dst`` is left exactly as it was. A full disk,
    a file-size limit or a read-only destination raise ``DestinationWriteError`` naming the cause.
    """
    target = Path(dst)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".pipeshield-tmp")
    except OSError as exc:
        raise DestinationWriteError(str(target), exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _DESTINATION_ERRNOS:
            raise DestinationWriteError(str(target), exc) from None
        raise


def encrypt_file(
    src: PathLike, dst: PathLike, provider: KeyProvider, *, key_name: str, context: Context,
    chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None, digests: bool = False,
    fsync: bool = False,
) -> EnvelopeResult:
    """Encrypt file ``src`` to ``dst`` (see :func:`encrypt_stream`)."""
    with open(src, "rb", buffering=0) as source, atomic_output(dst, fsync) as out:
        return encrypt_stream(
            source, out, provider, key_name=key_name, context=context, chunk_size=chunk_size,
            progress=progress, digests=digests,
        )


def decrypt_file(
    src: PathLike, dst: PathLike, provider: KeyProvider, *, context: Context,
    key_name: str | None = None, progress: Progress | None = None, digests: bool = False, fsync: bool = False,
) -> EnvelopeResult:
    """Decrypt file ``src`` to ``dst``; ``dst`` appears only after the final chunk verified."""
    with open(src, "rb", buffering=0) as source, atomic_output(dst, fsync) as out:
        return decrypt_stream(
            source, out, provider, context=context, key_name=key_name, progress=progress, digests=digests
        )


def rewrap_file(path: PathLike, provider: KeyProvider, *, dst: PathLike | None = None, fsync: bool = False) -> RewrapResult:
    """Rewrap the data key of an envelope file under the latest key version (in place unless ``dst``)."""
    with open(path, "rb", buffering=0) as source, atomic_output(dst or path, fsync) as out:
        return rewrap_stream(source, out, provider)


def inspect_file(path: PathLike) -> dict[str, Any]:
    """The header and the body layout of an envelope file, read without any key.

    ``plaintext_size`` and ``chunks`` follow from the file size and are unverified until decryption.
    """
    with open(path, "rb") as handle:
        header = read_header(handle)
    info = header.describe()
    size = os.path.getsize(path)
    body = size - info["header_size"]
    full, rest = divmod(body, header.chunk_size + TAG_SIZE)
    chunks = full + (1 if rest else 0)
    info.update(file_size=size, chunks=chunks, plaintext_size=max(body - TAG_SIZE * chunks, 0))
    if chunks == 0 or 0 < rest < TAG_SIZE:
        info["warning"] = "the body is truncated: decryption will fail"
    return info
