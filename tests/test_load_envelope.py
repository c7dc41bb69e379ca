"""Load: 8 encrypt/decrypt jobs in separate processes share one keyring (local, then the Vault emulator)
while two of them rotate the key. Every job succeeds, every output is the exact input, the keyring keeps
every key version, and no job prints a secret."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeshield.envelope import decrypt_file, inspect_file
from pipeshield.config import Settings
from pipeshield.keys import KeyProvider, LocalKeyProvider, open_key_provider
from tests.fixtures.secret_scan import SecretScanner
from tests.fixtures.vault import VaultServer

JOBS = 8
ROUNDS = 3  # encrypt -> decrypt rounds per job
ROTATING_JOBS = (0, 5)  # these also rotate the key after their first round
KEY = "load-data"
SIZE = 768 * 1024
CHUNK = 1 << 16

JOB = """
import json, sys
from pathlib import Path
from pipeshield.envelope import decrypt_file, encrypt_file
from pipeshield.keys import open_key_provider

work, key, rotate = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
src = work / "input.bin"
results = []
with open_key_provider() as provider:
    provider.create_key(key)  # every job creates it: all but the first are no-ops
    for round_ in range(int(sys.argv[4])):
        context = {"job": work.name, "round": round_}
        enc = encrypt_file(src, work / f"round{round_}.pse", provider, key_name=key, context=context,
                           chunk_size=int(sys.argv[5]), digests=True)
        if rotate and round_ == 0:
            provider.rotate(key)
        dec = decrypt_file(work / f"round{round_}.pse", work / f"round{round_}.out", provider, context=context,
                           key_name=key, digests=True)
        results.append({"key_version": enc.key_version, "encrypted": enc.plaintext_sha256,
                        "decrypted": dec.plaintext_sha256})
print(json.dumps(results))
"""


def _run_jobs(root: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Start every job at once (separate processes), then wait for all of them."""
    procs = []
    for job in range(JOBS):
        work = root / f"job{job}"
        work.mkdir()
        (work / "input.bin").write_bytes(os.urandom(SIZE - job * 1000))  # sizes differ: tails differ
        argv = [sys.executable, "-c", JOB, str(work), KEY, "1" if job in ROTATING_JOBS else "0", str(ROUNDS), str(CHUNK)]
        procs.append((argv, subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    done = []
    for argv, proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done


def _check(root: Path, results: list[subprocess.CompletedProcess], provider: KeyProvider,
           secret_scan: SecretScanner) -> dict[str, int]:
    """Every job succeeded, every output is its input, and the keyring still opens every envelope."""
    failed = [(r.returncode, r.stderr[-2000:]) for r in results if r.returncode != 0]
    assert failed == [], failed
    info = provider.key_info(KEY)
    assert info.latest_version == 1 + len(ROTATING_JOBS)  # no rotation lost or doubled
    assert info.versions == tuple(range(1, info.latest_version + 1))

    bytes_lost = identical = 0
    for job, result in enumerate(results):
        work = root / f"job{job}"
        original = (work / "input.bin").read_bytes()
        rounds = json.loads(result.stdout.strip().splitlines()[-1])
        assert len(rounds) == ROUNDS
        for round_, seen in enumerate(rounds):
            assert seen["encrypted"] == seen["decrypted"] == hashlib.sha256(original).hexdigest()
            assert 1 <= seen["key_version"] <= info.latest_version
            output = (work / f"round{round_}.out").read_bytes()
            bytes_lost += sum(a != b for a, b in zip(output, original)) + abs(len(output) - len(original))
            # the keyring as left behind still decrypts what every job wrote, under the recorded version
            envelope = work / f"round{round_}.pse"
            assert inspect_file(envelope)["key_version"] == seen["key_version"]
            again = decrypt_file(envelope, work / f"round{round_}.again", provider,
                                 context={"job": work.name, "round": round_}, key_name=KEY)
            assert (work / f"round{round_}.again").read_bytes() == original and again.key_version == seen["key_version"]
            identical += output == original
        secret_scan.text(f"job{job} stdout+stderr", result.stdout + result.stderr, kind="job output lines")
    assert bytes_lost == 0
    assert secret_scan.hits == [], secret_scan.describe()
    return {"identical": identical, "bytes_lost": bytes_lost, "versions": info.latest_version}


@pytest.mark.reliability("load", "8 concurrent encrypt/decrypt processes on one local keyring, 2 rotating",
                         "all succeed; every output byte-identical; key versions 1..3 intact; no secret printed")
def test_concurrent_jobs_on_one_local_keyring(tmp_path: Path, master_key: bytes, secret_scan: SecretScanner,
                                               reliability) -> None:
    master = base64.b64encode(master_key).decode()
    env = {**os.environ, "PIPESHIELD_KEYRING_DIR": str(tmp_path / "keyring"), "PIPESHIELD_MASTER_KEY": master}
    results = _run_jobs(tmp_path, env)
    secret_scan.add("master key", master_key)
    with LocalKeyProvider(tmp_path / "keyring", master_key) as provider:
        seen = _check(tmp_path, results, provider, secret_scan)
        assert provider.list_keys() == [KEY]
    leftovers = [p.name for p in (tmp_path / "keyring").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []  # no torn or abandoned key file writes
    reliability(observed=f"{JOBS}/{JOBS} jobs succeeded, {seen['identical']}/{JOBS * ROUNDS} round-trips identical, "
                         f"key versions 1..{seen['versions']} intact, 0 secrets in job output",
                concurrent_jobs=JOBS, bytes_lost=seen["bytes_lost"], secrets_leaked=len(secret_scan.hits))


@pytest.mark.reliability("load", "8 concurrent encrypt/decrypt processes on one Vault transit key, 2 rotating",
                         "all succeed; every output byte-identical; key versions 1..3 intact; no token printed")
def test_concurrent_jobs_on_one_vault_key(tmp_path: Path, vault: VaultServer, secret_scan: SecretScanner,
                                          reliability) -> None:
    transit = vault.enable_transit("load")
    token = vault.token([vault.write_policy("load", f'path "{transit}/*" {{ capabilities = ["create", "read", '
                                                   '"update", "list"] }')], ttl="1h")
    env = {**os.environ, "PIPESHIELD_KEY_PROVIDER": "vault", "PIPESHIELD_VAULT_ADDR": vault.address,
           "PIPESHIELD_VAULT_TOKEN": token, "PIPESHIELD_VAULT_TRANSIT_MOUNT": transit}
    results = _run_jobs(tmp_path, env)
    secret_scan.add("vault token", token)
    secret_scan.add("vault root token", vault.root_token)
    with open_key_provider(Settings.load({**env, "PIPESHIELD_VAULT_TOKEN": vault.root_token})) as provider:
        seen = _check(tmp_path, results, provider, secret_scan)
    reliability(observed=f"{JOBS}/{JOBS} jobs succeeded, {seen['identical']}/{JOBS * ROUNDS} round-trips identical, "
                         f"key versions 1..{seen['versions']} intact, 0 secrets in job output",
                concurrent_jobs=JOBS, bytes_lost=seen["bytes_lost"], secrets_leaked=len(secret_scan.hits))
