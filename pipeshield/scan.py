"""Scan model artifacts for dangerous pickles before they are signed (picklescan, strict).

Strict means an allow-list: every global a pickle imports must be one picklescan knows to be
innocuous or one named in :attr:`ScanPolicy.allowed_globals`; anything else, anything on picklescan's
deny-list, a file it cannot parse, a file over the size budget or a scan over the time budget is a
finding, and :func:`scan_or_raise` refuses the model. Scanning is a hygiene check with a record of
bypasses; the controls that matter are the signature and loading only verified copies. Prefer
formats that cannot run code: safetensors for tensors, skops for scikit-learn.

Which files are scanned: picklescan's pickle, PyTorch, NumPy and zip extensions, plus any file whose
first bytes are a pickle (protocol 2+), zip, 7z or NumPy header, whatever its name. A gzip, bzip2 or xz
file is decompressed as a stream and scanned when it holds a pickle (loaders such as joblib open them
transparently); an archive inside an archive cannot be scanned and is a finding.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
# pickletools disassembles without loading
import pickletools  # nosec B403
import re
import select
# runs only our own scanner worker (sys.executable -m pipeshield._scan_worker), never a shell
import subprocess  # nosec B404
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# picklescan disassembles pickles without loading them
from picklescan.scanner import SafetyLevel, scan_pickle_bytes  # nosec B403

from pipeshield._scan_worker import COMPRESSED
from pipeshield.errors import ConfigError, UnsafeModelError

_EXTENSIONS = frozenset({".pkl", ".pickle", ".joblib", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt",
                         ".npy", ".npz", ".zip", ".7z"})
_MAGIC = (b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"\x93NUMPY", *COMPRESSED) + tuple(bytes([0x80, p]) for p in range(2, 6))
# the first opcode of a protocol 0/1 pickle (no b"\x80" header to recognise it by)
_TEXT_PICKLE_STARTS = frozenset(op.code.encode("latin-1") for op in pickletools.opcodes if op.proto <= 1)
_STARTUP_SECONDS = 60.0
_GLOBAL = re.compile(r"^[A-Za-z_][\w.]*\.(?:[A-Za-z_]\w*|\*)$")


@dataclasses.dataclass(frozen=True)
class ScanPolicy:
    """Budgets and the allow-list.

    ``allowed_globals``: ``"module.name"`` or ``"module.*"`` (every name of exactly that module) that a
    pickle may import beyond picklescan's innocuous list; e.g. ``"sklearn.linear_model._logistic.LogisticRegression"``.
    Entries on picklescan's deny-list (``os.system``, ``builtins.eval``...) cannot be allowed.
    """

    allowed_globals: frozenset[str] = frozenset()
    max_file_bytes: int = 8 << 30
    timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_globals", frozenset(self.allowed_globals))
        for entry in self.allowed_globals:
            if not _GLOBAL.match(entry):
                raise ConfigError("allowed_globals", f"{entry!r} is not 'module.name' or 'module.*'")
            module, name = entry.rsplit(".", 1)
            if _denied(module, "__pipeshield_probe__" if name == "*" else name):
                raise ConfigError("allowed_globals", f"{entry!r} is on picklescan's deny-list and cannot be allowed")
        if self.max_file_bytes <= 0 or self.timeout_seconds <= 0:
            raise ConfigError("scan budget", "max_file_bytes and timeout_seconds must be positive")

    def allows(self, module: str, name: str) -> bool:
        return f"{module}.{name}" in self.allowed_globals or f"{module}.*" in self.allowed_globals


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """Files scanned, files skipped as not pickle-bearing, and findings (``"<file>: <problem>"``)."""

    scanned: tuple[str, ...]
    skipped: tuple[str, ...]
    findings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


def scan_files(files: Mapping[str, Path], policy: ScanPolicy | None = None) -> ScanReport:
    """Scan the pickle-bearing files among ``files`` (relative name -> path), one worker process with a
    per-file time budget; a timeout kills the worker and is a finding."""
    policy = policy or ScanPolicy()
    targets = [name for name in sorted(files) if needs_scan(files[name])]
    skipped = tuple(name for name in sorted(files) if name not in targets)
    findings: list[str] = []
    if targets:
        with _Worker() as worker:
            for name in targets:
                size = files[name].stat().st_size
                if size > policy.max_file_bytes:
                    findings.append(f"{name}: {size} bytes is over the scan budget of {policy.max_file_bytes}")
                    continue
                outcome = worker.scan(files[name], policy.timeout_seconds)
                if outcome is None:
                    findings.append(f"{name}: scan did not finish within {policy.timeout_seconds:g} s")
                    worker.restart(kill=True)
                else:
                    findings.extend(_judge(name, outcome, policy))
    return ScanReport(tuple(targets), skipped, tuple(findings))


def scan_directory(path: str | os.PathLike[str], policy: ScanPolicy | None = None) -> ScanReport:
    """Scan every regular file under ``path`` (symlinks and traversal names refused as when signing)."""
    from pipeshield.signing._files import list_model_files

    files, _ = list_model_files(Path(path), ())
    return scan_files(files, policy)


def scan_or_raise(files: Mapping[str, Path], policy: ScanPolicy | None = None) -> ScanReport:
    """:func:`scan_files`, raising ``UnsafeModelError`` naming every finding."""
    report = scan_files(files, policy)
    if not report.ok:
        shown = "; ".join(report.findings[:5]) + ("; ..." if len(report.findings) > 5 else "")
        raise UnsafeModelError(f"artifact scan refused the model: {shown}", report.findings)
    return report


def needs_scan(path: Path) -> bool:
    """True for files picklescan handles by extension, for any file that starts like a pickle/zip/7z/npy,
    and for a protocol 0/1 pickle under any name (its opcodes parse up to STOP)."""
    if path.suffix.lower() in _EXTENSIONS:
        return True
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith(_MAGIC):
            return True
        if head[:1] not in _TEXT_PICKLE_STARTS:
            return False
        handle.seek(0)
        return _parses_to_stop(handle)


def _parses_to_stop(handle: io.BufferedReader) -> bool:
    """True if the stream's opcodes parse as a pickle up to its STOP (most other files fail within bytes)."""
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(handle))
    except Exception:  # pickletools raises assorted errors on non-pickle bytes
        return False


def _judge(name: str, outcome: dict, policy: ScanPolicy) -> list[str]:
    if "error" in outcome:
        return [f"{name}: could not be scanned ({outcome['error']})"]
    problems = [f"{name}: picklescan could not parse it completely"] if outcome.get("scan_err") else []
    for module, global_name, safety in sorted({tuple(g) for g in outcome.get("globals", [])}):
        if safety == SafetyLevel.Dangerous.value:
            problems.append(f"{name}: dangerous global {module}.{global_name}")
        elif safety != SafetyLevel.Innocuous.value and not policy.allows(module, global_name):
            problems.append(f"{name}: global {module}.{global_name} is not on the allow-list")
    return problems


def _denied(module: str, name: str) -> bool:
    """True when picklescan's deny-list (non-strict mode) marks ``module.name`` dangerous."""
    probe = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    result = scan_pickle_bytes(io.BytesIO(probe), "allow-list", strict=False)
    return any(g.safety is SafetyLevel.Dangerous for g in result.globals)


class _Worker:
    """One ``pipeshield._scan_worker`` subprocess; killed on timeout and always stopped on exit."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Worker:
        self.restart()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def restart(self, *, kill: bool = False) -> None:
        self._stop(kill=kill)
        # fixed argv: this interpreter running our scanner module
        self._process = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "pipeshield._scan_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # the per-file budget starts once the worker has imported picklescan
        if self._read(_STARTUP_SECONDS) != "ready":
            self._stop(kill=True)
            raise UnsafeModelError("the scanner process did not start; refusing to sign unscanned files")

    def scan(self, path: Path, timeout: float) -> dict | None:
        """The worker's result for ``path``, or None when it did not answer within ``timeout`` seconds."""
        if self._process is None or self._process.stdin is None:
            raise UnsafeModelError("the scanner process is not running; refusing to sign unscanned files")
        try:
            self._process.stdin.write(json.dumps(str(path)).encode() + b"\n")
            self._process.stdin.flush()
        except OSError:
            return {"error": "scanner process died"}
        answer = self._read(timeout)
        return answer if answer is None or isinstance(answer, dict) else {"error": "scanner process failed"}

    def _read(self, timeout: float) -> object:
        if self._process is None or self._process.stdout is None:
            raise UnsafeModelError("the scanner process is not running; refusing to sign unscanned files")
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self._process.stdout.readline()
        try:
            return json.loads(line) if line else {"error": "scanner process exited"}
        except ValueError:
            return {"error": "scanner process answered garbage"}

    def _stop(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        elif process.stdin is not None:
            try:
                process.stdin.close()  # end of input: the worker exits
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def allowed(entries: Iterable[str]) -> frozenset[str]:
    """Helper for CLIs and settings: a cleaned allow-list (blank entries dropped)."""
    return frozenset(e.strip() for e in entries if e.strip())
