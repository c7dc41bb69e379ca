"""LocalKeyProvider specifics: at-rest protection, corruption, wrong master key, many processes at once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from pipeshield.config import Settings
from pipeshield.errors import ConfigError, KeyringCorruptedError, KeyNotFoundError, WrongMasterKeyError
from pipeshield.keys import KeyType, LocalKeyProvider, open_key_provider


def test_keyring_is_private_and_encrypted_at_rest(tmp_path: Path, master_key: bytes) -> None:
    provider = LocalKeyProvider(tmp_path / "kr", master_key)
    provider.create_key("data")
    data_key = provider.generate_data_key("data")
    assert stat.S_IMODE((tmp_path / "kr").stat().st_mode) == 0o700
    for path in (tmp_path / "kr").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert b'"key"' not in path.read_bytes()  # material only inside the sealed blob
    # the data key's plaintext cannot be read back from disk without the master key
    blob = b"".join(p.read_bytes() for p in (tmp_path / "kr").rglob("*.json"))
    assert data_key.plaintext not in blob


def test_wrong_master_key_is_named(tmp_path: Path, master_key: bytes) -> None:
    LocalKeyProvider(tmp_path / "kr", master_key).create_key("data")
    with pytest.raises(WrongMasterKeyError, match="master key"):
        LocalKeyProvider(tmp_path / "kr", os.urandom(32))


def test_corrupted_key_file_is_reported_and_left_untouched(tmp_path: Path, master_key: bytes) -> None:
    provider = LocalKeyProvider(tmp_path / "kr", master_key)
    provider.create_key("data")
    key_file = tmp_path / "kr" / "keys" / "data.json"
    damaged = key_file.read_bytes().replace(b'"sealed": "', b'"sealed": "AAAA')
    key_file.write_bytes(damaged)
    with pytest.raises(KeyringCorruptedError, match="data.json"):
        provider.generate_data_key("data")
    with pytest.raises(KeyringCorruptedError):
        provider.rotate("data")
    assert key_file.read_bytes() == damaged  # nothing overwritten


def test_key_file_swapped_to_another_name_is_refused(tmp_path: Path, master_key: bytes) -> None:
    provider = LocalKeyProvider(tmp_path / "kr", master_key)
    provider.create_key("a")
    provider.create_key("b")
    keys = tmp_path / "kr" / "keys"
    (keys / "b.json").write_bytes((keys / "a.json").read_bytes())
    with pytest.raises(KeyringCorruptedError):
        provider.key_info("b")


def test_key_names_cannot_escape_the_keyring(tmp_path: Path, master_key: bytes) -> None:
    provider = LocalKeyProvider(tmp_path / "kr", master_key)
    with pytest.raises(KeyNotFoundError):
        provider.create_key("../outside")


def test_master_key_file_is_generated_once(tmp_path: Path) -> None:
    settings = Settings.load({"PIPESHIELD_HOME": str(tmp_path)})
    first = open_key_provider(settings)
    first.create_key("data")
    wrapped = first.generate_data_key("data").wrapped
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    second = open_key_provider(settings)
    assert second.unwrap("data", wrapped)


def test_bad_master_key_setting_is_named(tmp_path: Path) -> None:
    settings = Settings.load({"PIPESHIELD_HOME": str(tmp_path), "PIPESHIELD_MASTER_KEY": "c2hvcnQ="})
    with pytest.raises(ConfigError, match="PIPESHIELD_MASTER_KEY"):
        open_key_provider(settings)


def _worker(keyring: str, master_key: bytes, worker: int, rounds: int, queue: multiprocessing.Queue) -> None:
    provider = LocalKeyProvider(keyring, master_key)
    produced = []
    for round_number in range(rounds):
        provider.create_key("shared")
        provider.create_key(f"own-{worker}", KeyType.AES256_GCM96)
        data_key = provider.generate_data_key("shared")
        produced.append((data_key.wrapped, data_key.plaintext))
        if round_number % 3 == 0:
            provider.rotate("shared")
        assert provider.unwrap("shared", data_key.wrapped) == data_key.plaintext
    queue.put(produced)


def test_many_processes_share_one_keyring(tmp_path: Path, master_key: bytes) -> None:
    keyring = str(tmp_path / "kr")
    LocalKeyProvider(keyring, master_key)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    workers, rounds = 6, 12
    procs = [ctx.Process(target=_worker, args=(keyring, master_key, w, rounds, queue)) for w in range(workers)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    provider = LocalKeyProvider(keyring, master_key)
    info = provider.key_info("shared")
    assert info.latest_version == 1 + workers * len(range(0, rounds, 3))  # no lost rotation
    assert sorted(provider.list_keys()) == sorted(["shared"] + [f"own-{w}" for w in range(workers)])
    for produced in results:
        for wrapped, plaintext in produced:
            assert provider.unwrap("shared", wrapped) == plaintext
