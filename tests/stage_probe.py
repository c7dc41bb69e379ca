"""Test operators for the stage DAGs: each acts as its stage through ``KeyProviderHook`` (as every
pipeshield operator does), performs one Transit operation and records the Vault identity it used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.keys import KeyProvider

DIGEST = bytes(32)


def _act(provider: KeyProvider, operation: str, key: str, wrapped: str | None) -> None:
    if operation == "datakey":
        provider.generate_data_key(key)
    elif operation == "decrypt":
        provider.unwrap(key, wrapped or "")
    elif operation == "sign":
        provider.sign_digest(key, DIGEST)
    else:
        provider.key_info(key)


def _record(path: str, task_id: str, stage: str, provider: Any) -> None:
    identity = provider.identity
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"task_id": task_id, "stage": stage, "accessor": identity.accessor,
                                 "policies": list(identity.policies)}) + "\n")


class StageProbeOperator(BaseOperator):
    """Knows its stage (class default ``train``, or the ``stage`` argument), like pipeshield's operators."""

    stage = "train"

    def __init__(self, *, operation: str, key: str, record: str, stage: str | None = None,
                 wrapped: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if stage:
            self.stage = stage
        self.operation, self.key, self.record, self.wrapped = operation, key, record, wrapped

    def execute(self, context: Any) -> None:
        provider = KeyProviderHook(stage=self.stage).get_provider()
        _act(provider, self.operation, self.key, self.wrapped)
        _record(self.record, self.task_id, self.stage, provider)


def marker_probe(record: str, key: str, params: dict[str, Any]) -> None:
    """A plain Python task carrying ``params={"pipeshield_stage": ...}``."""
    stage = params["pipeshield_stage"]
    provider = KeyProviderHook(stage=stage).get_provider()
    provider.key_info(key)
    _record(record, f"marker:{stage}", stage, provider)
