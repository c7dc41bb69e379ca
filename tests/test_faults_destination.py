"""Faults at the destination of an encryption: disk full, file-size limit, read-only filesystem, and the
encrypting process killed with SIGKILL. Each time: a clear ``DestinationWriteError`` (or a dead process),
nothing at the destination (an older file there keeps every byte), no temporary file left by a clean
failure, and a retry once the fault is gone succeeds and decrypts.

The encryptions run in child processes: a file-size limit (``RLIMIT_FSIZE``) and tiny or read-only
``tmpfs`` mounts (in a private mount namespace, when the machine allows one) are real kernel faults.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeshield.envelope import EnvelopeError, _files, decrypt_file, encrypt_file
from pipeshield.errors import DestinationWriteError
from pipeshield.keys import LocalKeyProvider

KEY = "pipeshield-data"
CONTEXT = {"dataset": "faults"}
OLD = b"the previous version of the output, which must survive\n"

# Child: encrypt argv[3] -> argv[4] (optionally under a file-size limit), then report what the
# destination directory holds. The report is written from inside the child because a tmpfs mounted in
# a private mount namespace vanishes with it.
ENCRYPT = """
import json, os, resource, sys
from pathlib import Path
from pipeshield.envelope import encrypt_file
from pipeshield.keys import LocalKeyProvider
keyring, master, src, dst, limit = sys.argv[1:6]
if int(limit):
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
report = {}
try:
    encrypt_file(src, dst, LocalKeyProvider(keyring, bytes.fromhex(master)), key_name="%s", context=%r,
                 chunk_size=1 << 16)
except Exception as exc:
    report["error"] = [type(exc).__name__, str(exc), getattr(exc, "errno", None)]
folder = Path(dst).parent
report["listing"] = {p.name: p.read_bytes().hex() for p in folder.iterdir()}
print(json.dumps(report))
""" % (KEY, CONTEXT)


@pytest.fixture
def keyring(tmp_path: Path, master_key: bytes) -> tuple[Path, bytes]:
    with LocalKeyProvider(tmp_path / "keyring", master_key) as provider:
        provider.create_key(KEY)
    return tmp_path / "keyring", master_key


@pytest.fixture(scope="module")
def mount_namespaces() -> bool:
    """True when this process may mount a tmpfs in a private mount namespace (root, or CAP_SYS_ADMIN)."""
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def _encrypt_in_child(keyring: tuple[Path, bytes], src: Path, dst: Path, *, limit: int = 0,
                      mount: str | None = None) -> dict:
    """Run :data:`ENCRYPT`; ``mount`` (a ``sh`` snippet run first in a private mount namespace) sets the fault."""
    argv = [sys.executable, "-c", ENCRYPT, str(keyring[0]), keyring[1].hex(), str(src), str(dst), str(limit)]
    if mount is not None:
        argv = ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "fault", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _source(tmp_path: Path, size: int) -> Path:
    src = tmp_path / "source.bin"
    src.write_bytes(os.urandom(size))
    return src


def _assert_clean_failure(report: dict, dst: Path, errno_name: str, reliability) -> None:
    """The child failed with DestinationWriteError naming the cause; only the old destination file is there."""
    assert report.get("error"), report
    kind, message, _ = report["error"]
    assert kind == DestinationWriteError.__name__, report["error"]
    assert errno_name in message and str(dst) in message and "nothing was written" in message
    listing = {name: bytes.fromhex(data) for name, data in report["listing"].items()}
    assert listing == {dst.name: OLD}, sorted(listing)  # no temporary file, old bytes intact
    reliability(observed=f"{kind}: {message}", bytes_lost=len(OLD) - len(os.path.commonprefix([listing[dst.name], OLD])))


def _retry_succeeds(keyring: tuple[Path, bytes], src: Path, tmp_path: Path) -> None:
    out = tmp_path / "retry" / "out.pse"
    out.parent.mkdir()
    with LocalKeyProvider(*keyring) as provider:
        encrypt_file(src, out, provider, key_name=KEY, context=CONTEXT)
        decrypt_file(out, tmp_path / "retry" / "plain", provider, context=CONTEXT)
    assert (tmp_path / "retry" / "plain").read_bytes() == src.read_bytes()


@pytest.mark.reliability("fault", "destination file-size limit hit during encryption (RLIMIT_FSIZE, EFBIG)",
                         "DestinationWriteError naming EFBIG; no temp file; the older destination intact; retry succeeds")
def test_file_size_limit_during_encryption(keyring: tuple[Path, bytes], tmp_path: Path, reliability) -> None:
    src = _source(tmp_path, 1 << 20)
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "data.pse"
    dst.write_bytes(OLD)
    report = _encrypt_in_child(keyring, src, dst, limit=200_000)
    _assert_clean_failure(report, dst, "EFBIG", reliability)
    _retry_succeeds(keyring, src, tmp_path)


@pytest.mark.reliability("fault", "destination disk full during encryption (256 KiB tmpfs, ENOSPC)",
                         "DestinationWriteError naming ENOSPC; no temp file; the older destination intact; retry succeeds")
def test_disk_full_during_encryption(keyring: tuple[Path, bytes], tmp_path: Path, mount_namespaces: bool,
                                     reliability) -> None:
    if not mount_namespaces:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs CAP_SYS_ADMIN)")
    src = _source(tmp_path, 1 << 20)
    mnt = tmp_path / "small"
    mnt.mkdir()
    dst = mnt / "data.pse"
    old = tmp_path / "old"
    old.write_bytes(OLD)
    report = _encrypt_in_child(keyring, src, dst,
                               mount=f"mount -t tmpfs -o size=256k tmpfs {mnt} && cp {old} {dst}")
    _assert_clean_failure(report, dst, "ENOSPC", reliability)
    _retry_succeeds(keyring, src, tmp_path)


@pytest.mark.reliability("fault", "read-only destination during encryption (read-only tmpfs, EROFS)",
                         "DestinationWriteError naming EROFS; nothing written; the older destination intact")
def test_read_only_destination(keyring: tuple[Path, bytes], tmp_path: Path, mount_namespaces: bool,
                               reliability) -> None:
    if not mount_namespaces:
        pytest.skip("cannot mount a read-only tmpfs in a private mount namespace here (needs CAP_SYS_ADMIN)")
    src = _source(tmp_path, 100_000)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    dst = mnt / "data.pse"
    old = tmp_path / "old"
    old.write_bytes(OLD)
    report = _encrypt_in_child(keyring, src, dst, mount=f"mount -t tmpfs -o size=64k tmpfs {mnt} && cp {old} {dst} "
                                                        f"&& mount -o remount,ro {mnt}")
    _assert_clean_failure(report, dst, "EROFS", reliability)
    _retry_succeeds(keyring, src, tmp_path)


@pytest.mark.reliability("fault", "encrypting process killed with SIGKILL after it started writing",
                         "nothing at the destination (older file intact); a clean retry succeeds and decrypts")
def test_sigkill_mid_encryption(keyring: tuple[Path, bytes], tmp_path: Path, reliability) -> None:
    # The child reads its plaintext from a FIFO that this test feeds: it is killed while provably
    # mid-stream (its temporary file has grown), with no sleeps or timing guesses.
    fifo = tmp_path / "plain.fifo"
    os.mkfifo(fifo)
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "data.pse"
    dst.write_bytes(OLD)
    child = subprocess.Popen([sys.executable, "-c", ENCRYPT, str(keyring[0]), keyring[1].hex(), str(fifo), str(dst),
                              "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    plain = os.urandom(4 << 20)
    fed, killed = threading.Event(), threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as pipe:
                pipe.write(plain[: 1 << 20])
                pipe.flush()
                fed.set()
                killed.wait(60)  # the child waits for more input, its output half written
                pipe.write(plain[1 << 20:])
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        assert fed.wait(60), "the child never opened its source"
        partial = _wait_for_partial_output(dst.parent, child)
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        killed.set()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
        feeder.join(10)
    kept = dst.read_bytes()
    lost = len(OLD) - len(os.path.commonprefix([kept, OLD]))
    assert kept == OLD  # the destination never saw the partial envelope
    # the output had no name while it was written (O_TMPFILE): SIGKILL leaves nothing behind
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]
    src = tmp_path / "source.bin"
    src.write_bytes(plain)
    with LocalKeyProvider(*keyring) as provider:
        encrypt_file(src, dst, provider, key_name=KEY, context=CONTEXT)
        decrypt_file(dst, tmp_path / "plain.out", provider, context=CONTEXT)
    assert (tmp_path / "plain.out").read_bytes() == plain
    reliability(observed=f"killed after {partial} bytes were written to an unnamed file; destination unchanged, "
                         "nothing left in the folder; retry decrypts", bytes_lost=lost)


def _wait_for_partial_output(folder: Path, child: subprocess.Popen) -> int:
    """The size of the child's output in ``folder`` (an unnamed file) once it holds a header and a chunk."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        for fd in Path(f"/proc/{child.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(f"{folder}/") and fd.stat().st_size > 1 << 16:
                    return fd.stat().st_size
        time.sleep(0.02)
    raise AssertionError("the child never started writing")


def test_output_without_unnamed_files_still_leaves_nothing_on_failure(
        keyring: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where O_TMPFILE is unavailable, a hidden named temporary file is used and removed on failure."""
    monkeypatch.setattr(_files, "_ANONYMOUS_FILES", False)
    src, dst = _source(tmp_path, 100_000), tmp_path / "out" / "data.pse"
    dst.parent.mkdir()
    with LocalKeyProvider(*keyring) as provider:
        encrypt_file(src, dst, provider, key_name=KEY, context=CONTEXT)
        with pytest.raises(EnvelopeError):
            decrypt_file(dst, tmp_path / "out" / "plain", provider, context=b"another context")
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]
