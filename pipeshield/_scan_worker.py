"""Subprocess that runs picklescan for ``pipeshield.scan``: one JSON path per stdin line, one JSON result per
stdout line. Kept apart so a scan that runs over its time budget can be killed."""

from __future__ import annotations

import json
import pickletools
import sys
import zipfile

from picklescan.scanner import scan_file_path

_NOT_RAW_PICKLE = (b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"\x93NUMPY")


def scan_one(path: str) -> dict:
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


def main() -> None:
    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        out.write(json.dumps(scan_one(json.loads(line))) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
