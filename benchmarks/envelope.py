"""Envelope encryption throughput and memory, against anchors measured in the same run.

    python benchmarks/envelope.py [--quick] [--reps N]

On one random file (1 GiB; ``--quick``: 256 MiB), warm in the page cache, file to file:
- anchor ``copy``: a plain ``readinto``/``write`` copy in 1 MiB chunks;
- anchor ``raw``: a bare AES-256-GCM ``encrypt_into`` loop over the same 1 MiB chunks (counter
  nonces, preallocated buffers, same reads and writes); ``raw_decrypt`` is the ``decrypt_into`` loop
  over its output;
- pipeshield ``encrypt_file``/``decrypt_file`` as shipped (defaults: no digests);
- the same with ``digests=True`` (SHA-256 of plaintext and ciphertext in the same pass, as the operators
  and the CLI ask for), against a third anchor ``raw_*_sha256``: the raw loop hashing both sides inline;
- peak RSS of a child process that only imports pipeshield and encrypts then decrypts the file with
  digests (the larger footprint: hashing threads hold ring buffers).

Files live in ``/dev/shm`` when it has room (``--dir`` to choose): on a disk, the gigabytes these
runs write hit the kernel's dirty-page limit, and whichever operation runs then measures the disk's
writeback instead of its own cost. Each output is deleted as soon as its run is timed.

Best of ``--reps`` (default 3) runs, interleaved. The last stdout line is one JSON object with every
figure. The target ratios (``encrypt_vs_raw`` ...) are pipeshield as shipped over the anchors;
``*_digests_vs_raw_sha256`` compare the digest mode with the raw loop doing the same hashing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 1 << 20


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(size // CHUNK):
            handle.write(os.urandom(CHUNK))


def _warm(path: Path) -> None:
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass


def _copy(src: Path, dst: Path) -> None:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(src, "rb", buffering=0) as source, open(dst, "wb") as out:
        while count := source.readinto(buffer):
            out.write(view[:count])


def _raw_encrypt(src: Path, dst: Path, key: bytes, digests: bool = False) -> None:
    aead = AESGCM(key)
    plain_hash, cipher_hash = hashlib.sha256(), hashlib.sha256()
    buffer, sealed = bytearray(CHUNK), bytearray(CHUNK + 16)
    view, sealed_view = memoryview(buffer), memoryview(sealed)
    index = 0
    with open(src, "rb", buffering=0) as source, open(dst, "wb") as out:
        while count := source.readinto(buffer):
            aead.encrypt_into(index.to_bytes(12, "big"), view[:count], None, sealed_view[: count + 16])
            out.write(sealed_view[: count + 16])
            if digests:
                plain_hash.update(view[:count])
                cipher_hash.update(sealed_view[: count + 16])
            index += 1


def _raw_decrypt(src: Path, dst: Path, key: bytes, digests: bool = False) -> None:
    aead = AESGCM(key)
    plain_hash, cipher_hash = hashlib.sha256(), hashlib.sha256()
    sealed, buffer = bytearray(CHUNK + 16), bytearray(CHUNK)
    sealed_view, view = memoryview(sealed), memoryview(buffer)
    index = 0
    with open(src, "rb", buffering=0) as source, open(dst, "wb") as out:
        while count := source.readinto(sealed):
            aead.decrypt_into(index.to_bytes(12, "big"), sealed_view[:count], None, view[: count - 16])
            out.write(view[: count - 16])
            if digests:
                cipher_hash.update(sealed_view[:count])
                plain_hash.update(view[: count - 16])
            index += 1


def _best(run: Callable[[], None], outputs: list[Path], size: int, times: list[float]) -> None:
    for path in outputs:
        path.unlink(missing_ok=True)
    start = time.perf_counter()
    run()
    times.append(size / (time.perf_counter() - start) / 1e6)
    for path in outputs:
        path.unlink(missing_ok=True)  # dropped before writeback: the next run starts with no dirty pages


def _work_root(requested: str | None, size: int) -> str | None:
    """``requested``, else ``/dev/shm`` when it holds the run's files (8 x size), else the system temp dir."""
    if requested:
        return requested
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if stats.f_bavail * stats.f_frsize >= 8 * size else None


def _rss_child(src: Path, work: Path) -> None:
    """Child process: import pipeshield, encrypt and decrypt ``src``, print peak RSS in MiB (JSON)."""
    from pipeshield.envelope import decrypt_file, encrypt_file
    from pipeshield.keys import LocalKeyProvider

    provider = LocalKeyProvider(work / "rss-keyring", os.urandom(32))
    provider.create_key("bench")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    encrypt_file(src, work / "rss.pse", provider, key_name="bench", context="bench", digests=True)
    decrypt_file(work / "rss.pse", work / "rss.out", provider, context="bench", digests=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(peak, 1)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 1 GiB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", help="directory for the benchmark's files (default: /dev/shm if it has room)")
    parser.add_argument("--rss-child", nargs=2, metavar=("SRC", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(Path(args.rss_child[0]), Path(args.rss_child[1]))
        return 0

    from pipeshield.envelope import decrypt_file, encrypt_file
    from pipeshield.keys import LocalKeyProvider

    size = (256 if args.quick else 1024) * CHUNK
    root = _work_root(args.dir, size)
    with tempfile.TemporaryDirectory(prefix="pipeshield-bench-envelope-", dir=root) as tmp:
        work = Path(tmp)
        src = work / "plain.bin"
        _write_random(src, size)
        _warm(src)
        provider = LocalKeyProvider(work / "keyring", os.urandom(32))
        provider.create_key("bench")
        key = os.urandom(32)
        copy_out, raw_out, raw_back = work / "copy.bin", work / "raw.bin", work / "raw.back"
        enc_out, dec_out = work / "ps.pse", work / "ps.out"
        raw_encrypt_out = work / "raw.keep"
        _raw_encrypt(src, raw_encrypt_out, key)
        encrypt_file(src, enc_out, provider, key_name="bench", context="bench")
        results: dict[str, list[float]] = {name: [] for name in (
            "copy", "raw_encrypt", "raw_decrypt", "encrypt", "decrypt",
            "raw_encrypt_sha256", "raw_decrypt_sha256", "encrypt_digests", "decrypt_digests")}
        for _ in range(args.reps):
            _best(lambda: _copy(src, copy_out), [copy_out], size, results["copy"])
            _best(lambda: _raw_encrypt(src, raw_out, key), [raw_out], size, results["raw_encrypt"])
            _best(lambda: _raw_decrypt(raw_encrypt_out, raw_back, key), [raw_back], size, results["raw_decrypt"])
            _best(lambda: encrypt_file(src, raw_out, provider, key_name="bench", context="bench"),
                  [raw_out], size, results["encrypt"])
            _best(lambda: decrypt_file(enc_out, dec_out, provider, context="bench"), [dec_out], size, results["decrypt"])
            _best(lambda: _raw_encrypt(src, raw_out, key, digests=True), [raw_out], size, results["raw_encrypt_sha256"])
            _best(lambda: _raw_decrypt(raw_encrypt_out, raw_back, key, digests=True), [raw_back], size,
                  results["raw_decrypt_sha256"])
            _best(lambda: encrypt_file(src, raw_out, provider, key_name="bench", context="bench", digests=True),
                  [raw_out], size, results["encrypt_digests"])
            _best(lambda: decrypt_file(enc_out, dec_out, provider, context="bench", digests=True),
                  [dec_out], size, results["decrypt_digests"])
            for path in (copy_out, raw_out, raw_back, dec_out):
                path.unlink(missing_ok=True)
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(src), str(work)],
            capture_output=True, text=True, check=True, timeout=1800,
        )
        rss = json.loads(child.stdout.strip().splitlines()[-1])

    best = {name: max(values) for name, values in results.items()}
    figures: dict[str, float | int | str] = {
        "size_mib": size // CHUNK, "chunk_kib": CHUNK // 1024, "reps": args.reps,
        **{f"{name}_mbps": round(value, 1) for name, value in best.items()},
        "encrypt_vs_raw": round(best["encrypt"] / best["raw_encrypt"], 3),
        "decrypt_vs_raw": round(best["decrypt"] / best["raw_decrypt"], 3),
        "encrypt_vs_copy": round(best["encrypt"] / best["copy"], 3),
        "decrypt_vs_copy": round(best["decrypt"] / best["copy"], 3),
        "encrypt_digests_vs_raw_sha256": round(best["encrypt_digests"] / best["raw_encrypt_sha256"], 3),
        "decrypt_digests_vs_raw_sha256": round(best["decrypt_digests"] / best["raw_decrypt_sha256"], 3),
        "encrypt_digests_vs_raw": round(best["encrypt_digests"] / best["raw_encrypt"], 3),
        "decrypt_digests_vs_raw": round(best["decrypt_digests"] / best["raw_decrypt"], 3),
        "peak_rss_mib": rss["peak_rss_mib"],
        "baseline_rss_mib": rss["baseline_rss_mib"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "work_dir": root or tempfile.gettempdir(),
    }
    print(f"envelope benchmark: {size // CHUNK} MiB file in {figures['work_dir']}, 1 MiB chunks, "
          f"best of {args.reps} (MB/s = 1e6 B/s)")
    print(f"{'operation':<22}{'best MB/s':>12}{'runs':>40}")
    for name, values in results.items():
        print(f"{name:<22}{best[name]:>12.0f}{', '.join(f'{v:.0f}' for v in values):>40}")
    print(f"peak RSS (child, encrypt+decrypt): {rss['peak_rss_mib']} MiB (after imports: {rss['baseline_rss_mib']} MiB)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
