"""Subprocess that runs picklescan for ``pipeshield.scan``: one JSON path per stdin line, one JSON result per
stdout line. Kept apart so a scan that runs over its time budget can be killed."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
# pickletools and picklescan disassemble pickles without ever loading them
import pickletools  # nosec B403
import sys
import zipfile
from collections.abc import Callable
from typing import IO

# picklescan reads pickle opcodes; it never unpickles
from picklescan.scanner import scan_file_path, scan_pickle_bytes  # nosec B403

_NOT_RAW_PICKLE = (b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"\x93NUMPY")
# compressed streams a loader may open transparently (joblib, pandas): gzip, bzip2, xz/lzma
COMPRESSED: dict[bytes, Callable[[str], IO[bytes]]] = {
    b"\x1f\x8b\x08": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open,
}
_ARCHIVES = (*_NOT_RAW_PICKLE[:2], *COMPRESSED)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt")


def scan_one(path: str) -> dict:
    with open(path, "rb") as handle:
        head = handle.read(8)
    opener = next((open_ for magic, open_ in COMPRESSED.items() if head.startswith(magic)), None)
    if opener is not None:
        return _scan_compressed(path, opener)
    if zipfile.is_zipfile(path):
        nested = _nested_archive(path)
        if nested:
            return {"error": f"archive entry {nested!r} is itself an archive or compressed; it cannot be scanned"}
    try:
        # strict=False keeps "suspicious" apart from deny-listed; pipeshield.scan applies strictness
        result = scan_file_path(path, strict=False)
    except Exception as exc:  # picklescan raises assorted errors on malformed input: reported, fail closed
        return {"error": f"{type(exc).__name__}: {exc}"}
    if not result.globals and not result.scan_err and not _parses_as_pickle(path):
        # picklescan reports an unparseable file without globals as clean; a loader might read it differently
        return {"error": "not a parseable pickle"}
    return {"scan_err": result.scan_err,
            "globals": [[g.module, g.name, g.safety.value] for g in result.globals]}


def _parses_as_pickle(path: str) -> bool:
    """True for containers picklescan unpacks itself, and for raw pickles whose every opcode parses."""
    with open(path, "rb") as handle:
        if handle.read(8).startswith(_NOT_RAW_PICKLE) or zipfile.is_zipfile(handle):
            return True
        handle.seek(0)
        try:
            for _ in pickletools.genops(handle):
                pass
        except Exception:
            return False
    return True


def _scan_compressed(path: str, opener: Callable[[str], IO[bytes]]) -> dict:
    """Scan the decompressed stream when it holds a pickle (by its first bytes or the name under the
    compression suffix); a compressed archive cannot be scanned. Decompression streams: a bomb runs
    into the caller's time budget, never into memory."""
    try:
        with opener(path) as stream:
            inner = stream.read(8)
        if inner.startswith(_ARCHIVES):
            return {"error": "a compressed archive cannot be scanned"}
        if not (inner[:1] == b"\x80" or os.path.splitext(path)[0].lower().endswith(_PICKLE_SUFFIXES)):
            return {"scan_err": False, "globals": []}  # compressed data that is not a pickle
        with opener(path) as stream:
            result = scan_pickle_bytes(stream, path, strict=False)
        if not result.globals and not result.scan_err:
            with opener(path) as stream:
                for _ in pickletools.genops(stream):
                    pass
    except Exception as exc:  # corrupt streams, unparseable pickles: reported, fail closed
        return {"error": f"compressed pickle: {type(exc).__name__}: {exc}"}
    return {"scan_err": result.scan_err, "globals": [[g.module, g.name, g.safety.value] for g in result.globals]}


def _nested_archive(path: str) -> str | None:
    """The first entry of zip ``path`` that is itself an archive or compressed stream (picklescan does not recurse)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                with archive.open(info) as entry:
                    if entry.read(8).startswith(_ARCHIVES):
                        return info.filename
    except (zipfile.BadZipFile, RuntimeError, OSError, ValueError, NotImplementedError):
        return None  # picklescan's own zip reader judges a damaged or exotic zip
    return None


def main() -> None:
    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        out.write(json.dumps(scan_one(json.loads(line))) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
