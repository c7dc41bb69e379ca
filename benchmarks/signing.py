"""Benchmark: hashing and signing a multi-file model against `openssl dgst -sha256` and `model_signing`.

    python benchmarks/signing.py [--quick] [--reps N] [--dir TMPDIR]

Builds a ~1 GiB model of 8 files (``--quick``: 256 MiB) in a temporary directory (deleted afterwards),
warms the page cache, then measures, best of ``--reps`` runs, interleaved:

- pipeshield hashing alone with 1 and 2 workers (``two_worker_speedup`` = t1 / t2);
- ``openssl dgst -sha256`` over the same files, one process (``hash_vs_openssl`` = openssl time / our
  1-worker time: ≥ 1 means we hash at least as fast as openssl on one core);
- ``sign_model`` (scan + hash + bindings + ML-BOM + sign, local key provider) and ``verify_model``;
- ``model_signing`` signing the same directory with a local EC P-256 PEM key
  (``sign_vs_model_signing`` = our sign time / theirs: ≤ 1 means no slower).

The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing, signing

from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.signing import SIGNATURE_FILE, ModelBindings, TrustedKeys, sign_model, verify_model
from pipeshield.signing._files import hash_files, list_model_files

FILES = 8
MIB = 1 << 20


def build_model(root: Path, total_bytes: int) -> None:
    """FILES safetensors-shaped files of random bytes plus a config: a multi-file checkpoint."""
    root.mkdir()
    per_file = total_bytes // FILES
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    for index in range(FILES):
        with open(root / f"model-{index:05d}-of-{FILES:05d}.safetensors", "wb") as handle:
            handle.write(struct.pack("<Q", len(header)) + header)
            remaining = per_file - 8 - len(header)
            while remaining > 0:
                chunk = os.urandom(min(8 * MIB, remaining))
                handle.write(chunk)
                remaining -= len(chunk)
    (root / "config.json").write_text(json.dumps({"layers": 24, "hidden": 4096}))


def warm(root: Path) -> None:
    for path in root.iterdir():
        with open(path, "rb", buffering=0) as handle:
            while handle.read(16 * MIB):
                pass


def best_of(reps: int, run: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 1 GiB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to create the temporary model (default: system temp)")
    args = parser.parse_args()
    total = (256 if args.quick else 1024) * MIB
    openssl = shutil.which("openssl")
    if openssl is None:
        print("openssl not found on PATH", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="pipeshield-bench-", dir=args.dir))
    try:
        model = work / "model"
        build_model(model, total)
        provider = LocalKeyProvider(work / "keyring", os.urandom(32))
        provider.create_key("bench", KeyType.ECDSA_P256)
        trusted = TrustedKeys.from_provider(provider, "bench")
        private = ec.generate_private_key(ec.SECP256R1())
        pem_path = work / "ms-key.pem"
        pem_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        ms_sig = work / "model_signing.sig"  # outside the model: the stock config then needs no ignore entry
        model_files = sorted(str(p) for p in model.iterdir())
        files, _ = list_model_files(model, ())
        size = sum(p.stat().st_size for p in files.values())
        warm(model)

        runs: dict[str, list[float]] = {k: [] for k in ("hash_1", "hash_2", "openssl", "sign", "verify",
                                                         "model_signing")}
        for _ in range(args.reps):  # interleaved so that machine noise hits every variant alike
            runs["openssl"] += best_of(1, lambda: subprocess.run([openssl, "dgst", "-sha256", *model_files],
                                                                  check=True, stdout=subprocess.DEVNULL))
            runs["hash_1"] += best_of(1, lambda: hash_files(files, workers=1))
            runs["hash_2"] += best_of(1, lambda: hash_files(files, workers=2))
            runs["model_signing"] += best_of(1, lambda: signing.Config().use_elliptic_key_signer(
                private_key=pem_path).set_hashing_config(hashing.Config()).sign(model, ms_sig))
            runs["sign"] += best_of(1, lambda: sign_model(model, provider, "bench", ModelBindings(name="bench")))
            runs["verify"] += best_of(1, lambda: _verified(model, trusted))
        assert (model / SIGNATURE_FILE).exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best = {k: min(v) for k, v in runs.items()}
    median = {k: statistics.median(v) for k, v in runs.items()}
    mbps = {k: size / best[k] / 1e6 for k in best}
    figures = {
        "model_bytes": size, "files": len(files), "reps": args.reps, "cpus": os.cpu_count(), "quick": args.quick,
        **{f"{k}_s": round(v, 4) for k, v in best.items()},
        **{f"{k}_median_s": round(v, 4) for k, v in median.items()},
        **{f"{k}_MBps": round(v, 1) for k, v in mbps.items()},
        "hash_vs_openssl": round(best["openssl"] / best["hash_1"], 3),
        "two_worker_speedup": round(best["hash_1"] / best["hash_2"], 3),
        "sign_vs_model_signing": round(best["sign"] / best["model_signing"], 3),
        "verify_vs_model_signing_sign": round(best["verify"] / best["model_signing"], 3),
    }
    print(f"model: {len(files)} files, {size / MIB:,.0f} MiB, {os.cpu_count()} CPUs, best of {args.reps}")
    print(f"{'step':<34}{'best s':>9}{'median s':>10}{'MB/s':>9}")
    labels = {"openssl": "openssl dgst -sha256 (1 process)", "hash_1": "pipeshield hash, 1 worker",
              "hash_2": "pipeshield hash, 2 workers", "sign": "pipeshield sign (scan+hash+sign)",
              "verify": "pipeshield verify", "model_signing": "model_signing sign (EC key)"}
    for key, label in labels.items():
        print(f"{label:<34}{best[key]:>9.3f}{median[key]:>10.3f}{mbps[key]:>9.0f}")
    print(f"hash vs openssl (speed ratio, target >= 0.9): {figures['hash_vs_openssl']}")
    print(f"two-worker speedup (target >= 1.5):           {figures['two_worker_speedup']}")
    print(f"sign time / model_signing (target <= 1.0):    {figures['sign_vs_model_signing']}")
    print(json.dumps(figures))
    return 0


def _verified(model: Path, trusted: TrustedKeys) -> None:
    result = verify_model(model, trusted)
    if not result.ok:
        raise SystemExit(f"verification failed: {result.reason}")


if __name__ == "__main__":
    sys.exit(main())
