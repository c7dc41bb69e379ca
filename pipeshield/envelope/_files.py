"""File-level envelope operations: output goes to a temporary file renamed into place only on success."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
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
# O_TMPFILE unsupported by the file system (EOPNOTSUPP) or the kernel (EISDIR, EINVAL)
_NO_TMPFILE_ERRNOS = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
# unnamed files can be given a name only through /proc (linkat without CAP_DAC_READ_SEARCH)
_ANONYMOUS_FILES = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
TEMP_SUFFIX = ".pipeshield-tmp"


@contextlib.contextmanager
def atomic_output(dst: PathLike, fsync: bool = False) -> Iterator[IO[bytes]]:
    """A temporary file (mode 0600) beside ``dst``, renamed onto ``dst`` only if the block succeeds.

    On any exception the temporary file is removed and ``dst`` is left exactly as it was. Where the
    file system allows (Linux ``O_TMPFILE``), the temporary file has no name until it is complete, so
    even a process killed with SIGKILL leaves nothing behind. A full disk, a file-size limit or a
    read-only destination raise ``DestinationWriteError`` naming the cause.
    """
    target = Path(dst)
    fd, tmp = _open_temporary(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
            if tmp is None:
                tmp = _name_anonymous(handle.fileno(), target)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _DESTINATION_ERRNOS:
            raise DestinationWriteError(str(target), exc) from None
        raise


def _open_temporary(target: Path) -> tuple[int, str | None]:
    """An unnamed file in ``target``'s directory (path None), or a hidden named one where that is unsupported."""
    try:
        if _ANONYMOUS_FILES:
            try:
                return os.open(target.parent, os.O_TMPFILE | os.O_WRONLY, 0o600), None
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE_ERRNOS:
                    raise
        return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise DestinationWriteError(str(target), exc) from None


def _name_anonymous(fd: int, target: Path) -> str:
    """Give the finished unnamed file a hidden name beside ``target`` (then renamed onto it)."""
    name = str(target.parent / f".{target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
    proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:  # a dir fd makes os.link call linkat(AT_SYMLINK_FOLLOW): it links the file, not the /proc symlink
        os.link(str(fd), name, src_dir_fd=proc_fds, follow_symlinks=True)
    finally:
        os.close(proc_fds)
    return name


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
