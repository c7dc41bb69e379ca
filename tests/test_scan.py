"""Artifact scanning before signing: strict allow-list, deny-list, budgets, disguised pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeshield.errors import ConfigError, UnsafeModelError
from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.scan import ScanPolicy, scan_directory, scan_files
from pipeshield.signing import RESERVED_FILES, ModelBindings, sign_model

SKLEARN_GLOBAL = "sklearn.linear_model._logistic.LogisticRegression"


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def sklearn_pickle() -> bytes:
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    return pickle.dumps(model)


@pytest.mark.reliability("hostile input", "pickle calling os.system in a model",
                         "UnsafeModelError before signing; no signature files")
def test_dangerous_pickle_is_refused_before_signing(tmp_path: Path, master_key: bytes, reliability) -> None:
    provider = LocalKeyProvider(tmp_path / "keyring", master_key)
    provider.create_key("sig", KeyType.ECDSA_P256)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pkl").write_bytes(pickle.dumps(_RunsACommand()))
    (model / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(UnsafeModelError, match=r"model.pkl: dangerous global posix\.system") as caught:
        sign_model(model, provider, "sig", ModelBindings(name="churn"))
    assert caught.value.findings
    assert not any((model / name).exists() for name in RESERVED_FILES)
    reliability(observed=f"UnsafeModelError: {caught.value}")


@pytest.mark.reliability("hostile input", "pickle importing a global not on the allow-list",
                         "flagged until explicitly allowed")
def test_unknown_globals_need_the_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(sklearn_pickle())
    refused = scan_files({"model.pkl": path})
    assert refused.findings == (f"model.pkl: global {SKLEARN_GLOBAL} is not on the allow-list",)
    assert scan_files({"model.pkl": path}, ScanPolicy(allowed_globals=frozenset({SKLEARN_GLOBAL}))).ok
    assert scan_files({"model.pkl": path}, ScanPolicy(frozenset({"sklearn.linear_model._logistic.*"}))).ok


@pytest.mark.reliability("hostile input", "allow-listing os.system, builtins.eval, subprocess.*",
                         "ConfigError")
def test_deny_listed_globals_cannot_be_allowed() -> None:
    for entry in ("os.system", "builtins.eval", "subprocess.*"):
        with pytest.raises(ConfigError, match="deny-list"):
            ScanPolicy(allowed_globals=frozenset({entry}))
    with pytest.raises(ConfigError, match="module.name"):
        ScanPolicy(allowed_globals=frozenset({"not a global"}))


@pytest.mark.reliability("hostile input", "malicious pickle named weights.safetensors",
                         "scanned by magic bytes and flagged")
def test_pickle_under_a_harmless_name_is_scanned(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.safetensors").write_bytes(pickle.dumps(_RunsACommand(), protocol=4))
    (model / "config.json").write_text("{}")
    report = scan_directory(model)
    assert report.scanned == ("weights.safetensors",) and report.skipped == ("config.json",)
    assert not report.ok and "dangerous global" in report.findings[0]


@pytest.mark.reliability("hostile input", "pickle over the size budget / scan over the time budget",
                         "finding; the worker is replaced and the next file still scanned")
def test_size_and_time_budgets_fail_closed(tmp_path: Path) -> None:
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"a": 1}))
    over = scan_files({"small.pkl": small}, ScanPolicy(max_file_bytes=4))
    assert "over the scan budget" in over.findings[0]

    dense = tmp_path / "dense.pkl"  # millions of opcodes: seconds of scanning
    dense.write_bytes(pickle.dumps([{"k": i} for i in range(400_000)]))
    timed_out = scan_files({"dense.pkl": dense, "small.pkl": small}, ScanPolicy(timeout_seconds=0.01))
    assert timed_out.findings[0] == "dense.pkl: scan did not finish within 0.01 s"
    # the worker was replaced: the next file was still scanned
    assert timed_out.scanned == ("dense.pkl", "small.pkl") and len(timed_out.findings) == 1


@pytest.mark.reliability("hostile input", "unparseable .pkl",
                         "finding (fail closed)")
def test_unparseable_pickle_extension_fails_closed(tmp_path: Path) -> None:
    junk = tmp_path / "table.pkl"
    junk.write_bytes(b"\x80\x04not really a pickle")
    report = scan_files({"table.pkl": junk})
    assert not report.ok and "table.pkl" in report.findings[0]


@pytest.mark.reliability("hostile input", "MLflow cloudpickle model without an allow-list",
                         "flagged; skops model passes")
def test_mlflow_skops_model_passes_and_cloudpickle_needs_the_allow_list(tmp_path: Path) -> None:
    import mlflow.sklearn

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    mlflow.sklearn.save_model(model, tmp_path / "skops", serialization_format="skops",
                             pip_requirements=["scikit-learn"])
    mlflow.sklearn.save_model(model, tmp_path / "pickled", serialization_format="cloudpickle",
                             pip_requirements=["scikit-learn"])
    assert scan_directory(tmp_path / "skops").ok
    refused = scan_directory(tmp_path / "pickled")
    assert refused.findings == (f"model.pkl: global {SKLEARN_GLOBAL} is not on the allow-list",)
    assert scan_directory(tmp_path / "pickled", ScanPolicy(frozenset({SKLEARN_GLOBAL}))).ok
