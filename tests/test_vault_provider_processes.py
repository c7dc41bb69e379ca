"""Several processes (as Airflow runs tasks) use Vault at once, each logging in with its stage's AppRole
from ``PIPESHIELD_*`` variables only."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures.vault import VaultServer

TASK = """
import base64, sys
from pipeshield.keys import open_key_provider
with open_key_provider() as keys:
    for _ in range(20):
        data_key = keys.generate_data_key(sys.argv[1])
        assert keys.unwrap(sys.argv[1], data_key.wrapped) == data_key.plaintext
    print(keys.name, data_key.key_version)
"""


def test_concurrent_task_processes_with_stage_approles(vault: VaultServer) -> None:
    transit = vault.enable_transit("procs")
    key = vault.unique("shared")
    vault.client().secrets.transit.create_key(key, mount_point=transit)
    policy = vault.write_policy("task", f"""
path "{transit}/keys/{key}" {{ capabilities = ["read"] }}
path "{transit}/datakey/plaintext/{key}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/{key}" {{ capabilities = ["update"] }}
""")
    creds = vault.approle(vault.enable_approle(), "task", [policy], secret_id_num_uses=0)
    env = {**os.environ, **vault.approle_env(creds, transit, stage="train")}
    tasks = [subprocess.Popen([sys.executable, "-c", TASK, key], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [task.communicate(timeout=120) for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["vault 1"] * 3
    assert creds.secret_id not in "".join(out + err for out, err in results)
