"""Walk a model directory safely and hash its files in parallel (SHA-256, one digest per file).

Refused: symlinks that leave the directory or point at a directory, names that could traverse
(``..``, absolute, backslashes, control characters), and anything that is not a regular file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from pipeshield.errors import ModelPathError

CHUNK = 1 << 20  # fits L2: the copy from the page cache is still hot when hashed
ProgressCallback = Callable[[int], None]

#: paths the stock OMS hashing config ignores by default (``hashing.Config`` with ``ignore_git_paths``)
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]")


def check_relative_name(name: str) -> str:
    """``name`` if it is a safe POSIX path relative to a model root; raises ``ModelPathError``."""
    path = PurePosixPath(name)
    if (not name or path.is_absolute() or ".." in path.parts or "." in name.split("/")
            or _BAD_NAME.search(name) or str(path) != name or not _utf8(name)):
        raise ModelPathError(f"refusing model path {name!r}: not a plain relative name")
    return name


def _utf8(name: str) -> bool:
    """False for a name that is not valid UTF-8 on disk (os.walk hands it over with surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_ignored(name: str, ignore: Iterable[str]) -> bool:
    """True when ``name`` equals an ignored path or lies under an ignored directory."""
    return any(name == i or name.startswith(i.rstrip("/") + "/") for i in ignore)


def list_model_files(root: Path, ignore: Iterable[str]) -> tuple[dict[str, Path], bool]:
    """Map of relative POSIX name -> path of every regular file under ``root`` not ignored, and whether
    any of them is a symlink (to a file inside ``root``)."""
    root = Path(root)
    if root.is_symlink() or not root.is_dir():
        raise ModelPathError(f"model path {str(root)!r} is not a directory")
    real_root = root.resolve()
    ignore = tuple(ignore)
    files: dict[str, Path] = {}
    has_symlinks = False
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        for entry in sorted(dirnames + filenames):
            name = entry if rel_dir == "." else f"{rel_dir}/{entry}"
            check_relative_name(name)
            if is_ignored(name, ignore):
                if entry in dirnames:
                    dirnames.remove(entry)
                continue
            path = base / entry
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = path.resolve()
                except (RuntimeError, OSError):  # a symlink loop (RuntimeError on Python < 3.13)
                    raise ModelPathError(f"refusing symlink {name!r}: it cannot be resolved (a symlink loop)") from None
                if not target.is_relative_to(real_root):
                    raise ModelPathError(f"refusing symlink {name!r}: it points outside the model directory")
                if not target.is_file():
                    raise ModelPathError(f"refusing symlink {name!r}: only links to regular files are allowed")
                if entry in dirnames:
                    dirnames.remove(entry)
                files[name] = path
                has_symlinks = True
            elif stat.S_ISDIR(mode):
                continue
            elif stat.S_ISREG(mode):
                files[name] = path
            else:
                raise ModelPathError(f"refusing {name!r}: not a regular file or directory")
    return files, has_symlinks


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> bytes:
    """Raw SHA-256 of a file, read in 1 MiB chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        with contextlib.suppress(OSError):  # larger read-ahead on cold files; only a hint
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            if progress:
                progress(count)
    return digest.digest()


def hash_files(files: dict[str, Path], *, workers: int | None = None,
               progress: ProgressCallback | None = None) -> dict[str, bytes]:
    """SHA-256 of every file, ``workers`` files at a time (hashlib releases the GIL). The default, as
    model-signing's, is the usable CPUs + 4: extra threads keep reads in flight when storage is the limit."""
    workers = max(1, workers or min(32, len(os.sched_getaffinity(0)) + 4))
    report = _locked(progress) if progress and workers > 1 else progress
    if workers == 1 or len(files) <= 1:
        return {name: sha256_file(path, report) for name, path in files.items()}
    # biggest files first keeps the workers busy until the end
    order = sorted(files, key=lambda n: files[n].stat().st_size, reverse=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(sha256_file, files[name], report) for name in order}
        return {name: future.result() for name, future in futures.items()}


def _locked(progress: ProgressCallback) -> ProgressCallback:
    lock = threading.Lock()

    def report(count: int) -> None:
        with lock:
            progress(count)

    return report


def root_digest(digests: dict[str, bytes]) -> str:
    """OMS root digest: SHA-256 over the raw per-file digests in OMS order (sorted as paths, not strings)."""
    hasher = hashlib.sha256()
    for name in sorted(digests, key=PurePosixPath):
        hasher.update(digests[name])
    return hasher.hexdigest()
