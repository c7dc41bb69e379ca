"""Load: concurrent signed registrations (12 in ``make test``; ``PIPESHIELD_LOAD_REGISTRATIONS=50`` for the
full run) of one registered model at once against one real ``mlflow server``
with the ``signed+sqlite`` registry store. Each succeeds or fails with a PipeshieldError; the versions
are 1..N with no gap or duplicate, each one's signed bindings name its own number and its own source,
and every version verifies afterwards."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeshield.errors import PipeshieldError
from pipeshield.registry import (
    ROOT_DIGEST_TAG,
    next_version_marker,
    parse_next_version,
    parse_wait_version,
    register_signed_model,
    verify_registered_model,
    wait_version_marker,
)
from pipeshield.signing import BINDINGS_FILE
from tests.fixtures.signed_registry import MODEL_FILES, SignedRegistry, log_test_model

REGISTRATIONS = int(os.environ.get("PIPESHIELD_LOAD_REGISTRATIONS", "12"))


def _register_all(registry: SignedRegistry, name: str, sources: list[str]) -> list[object]:
    """Every registration starts at the same moment, each on its own thread, client and key provider."""
    start = threading.Barrier(len(sources))

    def one(source: str) -> object:
        client = registry.client()
        with registry.provider() as provider:
            start.wait()
            try:
                return register_signed_model(source, name, provider=provider, key_name=registry.key_name,
                                             client=client)
            except PipeshieldError as exc:  # a clean refusal; anything else escapes and fails the test
                return exc

    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        return list(pool.map(one, sources))


@pytest.mark.slow
@pytest.mark.reliability("load", f"{REGISTRATIONS} concurrent signed registrations of one model name (signed+sqlite store)",
                         "each succeeds or fails with a PipeshieldError; versions 1..N, no gap or duplicate; "
                         "every version's signed bindings name its number and source; all verify")
def test_concurrent_signed_registrations(signed_registry: SignedRegistry, tmp_path: Path, reliability,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipeshield.registry")
    client = signed_registry.client()
    name = f"load-{uuid.uuid4().hex[:8]}"
    sources = []
    for index in range(REGISTRATIONS):  # 50 distinct small models
        files = {**MODEL_FILES, "weights.json": json.dumps({"coef": [index, 0.5], "intercept": 0.1}).encode()}
        sources.append(log_test_model(client, files)[0])

    outcomes = _register_all(signed_registry, name, sources)
    succeeded = {source: mv for source, mv in zip(sources, outcomes) if not isinstance(mv, Exception)}
    failed = [f"{type(exc).__name__}: {exc}" for exc in outcomes if isinstance(exc, Exception)]

    resigned = sum("re-signing" in r.getMessage() for r in caplog.records)
    versions = client.search_model_versions(f"name = '{name}'")
    numbers = sorted(int(v.version) for v in versions)
    duplicates = len(numbers) - len(set(numbers))
    assert numbers == list(range(1, len(succeeded) + 1))  # no gap, no duplicate, no version of a failure
    assert sorted(int(mv.version) for mv in succeeded.values()) == numbers
    assert all(ROOT_DIGEST_TAG in v.tags for v in versions)  # no half-made (unsigned) version

    sources_seen = []
    for source, mv in succeeded.items():
        verified = verify_registered_model(name, mv.version, keys=signed_registry.keys(), client=client,
                                           dest_dir=tmp_path / "verified")
        bindings = json.loads((verified.path / BINDINGS_FILE).read_text())["bindings"]
        assert verified.version == int(mv.version) and bindings["version"] == int(mv.version)
        assert bindings["source"] == source  # each version carries the model its registration sent
        sources_seen.append(bindings["source"])
    assert len(set(sources_seen)) == len(sources_seen)  # no model registered twice

    reliability(observed=f"{len(succeeded)}/{REGISTRATIONS} registrations succeeded, {len(failed)} failed cleanly"
                         f"{' (' + failed[0][:120] + ')' if failed else ''}; versions 1..{len(numbers)} contiguous, "
                         f"{duplicates} duplicates, {len(succeeded)} verified afterwards; {resigned} re-signings for a newer number",
                concurrent_registrations=REGISTRATIONS, registrations_succeeded=len(succeeded),
                registrations_failed=len(failed), duplicate_versions=duplicates)
    assert failed == []


def test_wait_and_next_version_markers_are_told_apart() -> None:
    refusal = f"'m': version 7 is reserved for this registration; send it again later {wait_version_marker(7)}"
    assert parse_wait_version(refusal) == 7 and parse_next_version(refusal) is None
    assert parse_wait_version(next_version_marker(7)) is None and parse_next_version(next_version_marker(7)) == 7
