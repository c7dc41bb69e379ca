"""Subprocess that runs picklescan for ``pipeshield.scan``: one JSON path per stdin line, one JSON result per
stdout line. Kept apart so a scan that runs over its time budget can be killed."""

from __future__ import annotations

import json
import sys

from picklescan.scanner import scan_file_path


def scan_one(path: str) -> dict:
    try:
        # strict=False keeps "suspicious" apart from deny-listed; pipeshield.scan applies strictness
        result = scan_file_path(path, strict=False)
    except Exception as exc:  # picklescan raises assorted errors on malformed input: reported, fail closed
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"scan_err": result.scan_err,
            "globals": [[g.module, g.name, g.safety.value] for g in result.globals]}


def main() -> None:
    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        out.write(json.dumps(scan_one(json.loads(line))) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
