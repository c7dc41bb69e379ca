"""Local paths and object-storage URIs for the envelope operators.

A location is a local path (or ``file://`` URI), or any URI ``ObjectStoragePath`` understands
(``s3://``, ``gs://``, ``memory://``, ``s3://conn_id@bucket/key`` …). Outputs to object storage are
staged in a local temporary file and uploaded only once the core call has succeeded, so a failed
decryption leaves nothing at the destination.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from airflow.sdk import ObjectStoragePath

from pipeshield.envelope._files import atomic_output

_COPY_CHUNK = 1 << 20


def local_path(location: str) -> Path | None:
    """The local path of ``location``, or None for an object-storage URI."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # not a Windows drive letter
        return None
    return Path(location)


@contextlib.contextmanager
def open_source(location: str) -> Iterator[IO[bytes]]:
    """A binary stream reading ``location``."""
    path = local_path(location)
    if path is not None:
        with open(path, "rb", buffering=0) as handle:
            yield handle
    else:
        with ObjectStoragePath(location).open("rb") as handle:
            yield handle


@contextlib.contextmanager
def staged_destination(location: str) -> Iterator[IO[bytes]]:
    """A binary stream whose bytes appear at ``location`` only if the block succeeds."""
    path = local_path(location)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as handle:
            yield handle
        return
    with tempfile.TemporaryFile(prefix="pipeshield-stage-") as staged:
        yield staged
        staged.seek(0)
        target = ObjectStoragePath(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            shutil.copyfileobj(staged, out, _COPY_CHUNK)

