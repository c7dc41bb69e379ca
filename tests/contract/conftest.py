"""Providers under contract. Every test in ``test_key_provider_contract.py`` runs against each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeshield.keys import KeyProvider, LocalKeyProvider


@pytest.fixture(params=["local"])
def key_provider(request: pytest.FixtureRequest, tmp_path: Path, master_key: bytes) -> Iterator[KeyProvider]:
    if request.param == "local":
        provider: KeyProvider = LocalKeyProvider(tmp_path / "keyring", master_key)
    else:  # pragma: no cover - extended as providers are added
        raise AssertionError(request.param)
    with provider:
        yield provider
