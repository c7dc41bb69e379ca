"""The data gate core: validation, poisoning portfolio, report, on_flag, and clear errors on bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeshield.checks._tables import local_path
from pipeshield.checks.errors import MissingLabelColumnError, MissingValuesError, SchemaMismatchError
from pipeshield.checks.gate import run_gate
from pipeshield.checks.validation import load_suite, validate_table
from pipeshield.datasets import sha256_file
from pipeshield.errors import DataGateFailed, DataInputError, ExpectationSuiteError
from tests.gate_data import SUITE, GateData, make_tables


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> GateData:
    return make_tables(tmp_path_factory.mktemp("gate-data"))


# --- validation -----------------------------------------------------------


def test_validation_reports_failing_expectations_with_row_ids_but_no_values(tmp_path: Path) -> None:
    frame = pd.DataFrame({"f0": [1.0, 2.0, 99.0, 3.0], "label": [0, 1, 0, 7]})
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump(SUITE))
    report = validate_table(frame, suite_file)
    assert not report.success
    assert sorted(o.name for o in report.failed) == [
        "expect_column_values_to_be_between(f0)", "expect_column_values_to_be_in_set(label)"]
    assert report.flagged_rows == [2, 3]
    as_json = json.dumps(report.to_dict())
    assert "99.0" not in as_json and "unexpected_list" not in as_json
    assert "FAILED expect_column_values_to_be_between(f0): 1 unexpected rows" in report.summary()


def test_validation_accepts_a_suite_object_and_a_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    pd.DataFrame({"f0": [0.5, 1.5], "label": [0, 1]}).to_csv(path, index=False)
    report = validate_table(path, load_suite(SUITE))
    assert report.success and report.suite_name == "features" and len(report.outcomes) == 3


@pytest.mark.parametrize(("suite", "message"), [
    ({"name": "x", "expectations": [{"type": "expect_no_such_thing", "kwargs": {}}]}, "'expect_no_such_thing' is invalid"),
    ({"name": "x"}, "list under 'expectations'"),
    ("missing-suite.json", "file not found"),
])
def test_bad_suites_are_refused_by_name(tmp_path: Path, suite: object, message: str) -> None:
    if isinstance(suite, str):
        suite = tmp_path / suite
    with pytest.raises(ExpectationSuiteError, match=message):
        load_suite(suite)


# --- gate -----------------------------------------------------------------


def test_clean_batch_passes_and_report_binds_the_inputs(tables: GateData, tmp_path: Path) -> None:
    result = run_gate(tables.clean, reference=tables.reference, suite=tables.suite, report_path=tmp_path / "r.json")
    assert (result.verdict, result.action, result.fired) == ("pass", "passed", ())
    assert result.report_sha256 == hashlib.sha256((tmp_path / "r.json").read_bytes()).hexdigest()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["datasets"]["incoming"] == {"uri": tables.clean.resolve().as_uri(), "sha256": sha256_file(tables.clean),
                                              "rows": 400, "kind": "file"}
    assert report["datasets"]["reference"]["sha256"] == sha256_file(tables.reference)
    assert report["suite"]["sha256"] == sha256_file(tables.suite)
    assert report["validation"]["success"] and report["poisoning"]["verdict"] == "pass"
    assert (tmp_path / "r.txt").read_text().startswith("data gate: PASS -> passed")
    assert result.to_dict()["training_data"] == result.incoming.to_dict()


def test_poisoned_batch_fails_after_writing_the_report(tables: GateData, tmp_path: Path) -> None:
    with pytest.raises(DataGateFailed) as caught:
        run_gate(tables.poisoned, reference=tables.reference, suite=tables.suite, report_path=tmp_path / "r.json")
    assert caught.value.checks and all(c.startswith("poisoning:") for c in caught.value.checks)
    assert ", ".join(caught.value.checks) in str(caught.value)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "fail" and report["action"] == "failed"
    assert len(set(report["flagged_rows"]) & set(tables.poisoned_rows)) >= len(tables.poisoned_rows) // 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.txt"]  # no clean/quarantine output


def test_quarantine_splits_flagged_rows_out(tables: GateData, tmp_path: Path) -> None:
    result = run_gate(tables.poisoned, reference=tables.reference, report_path=tmp_path / "r.json",
                      on_flag="quarantine", clean_path=tmp_path / "clean.parquet")
    assert (result.verdict, result.action) == ("fail", "quarantined")
    poisoned = pd.read_parquet(tables.poisoned)
    clean, quarantined = pd.read_parquet(tmp_path / "clean.parquet"), pd.read_parquet(local_path(result.quarantine.uri))
    assert len(clean) + len(quarantined) == len(poisoned) and len(quarantined) == result.n_flagged
    assert result.clean.sha256 == sha256_file(tmp_path / "clean.parquet")
    assert result.to_dict()["clean_path"] == str(tmp_path / "clean.parquet")
    features = [c for c in clean.columns if c != "label"]
    assert (clean.groupby(features)["label"].nunique() == 1).all()  # no conflicting duplicates left


def test_quarantine_mode_always_hands_training_this_batch(tmp_path: Path) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text("f0,label\n9.9,1\n")  # left by an earlier run
    frame = pd.DataFrame({"f0": [0.1, 0.2, 0.3], "label": [0, 1, 0]})
    result = run_gate(frame, suite=SUITE, poisoning=False, on_flag="quarantine", clean_path=clean.as_uri(),
                      quarantine_path=tmp_path / "q.csv", report_path=tmp_path / "r.json")
    assert result.action == "passed" and result.training_data == result.clean
    assert pd.read_csv(clean).equals(frame) and len(pd.read_csv(tmp_path / "q.csv")) == 0
    bad = frame.assign(f0=[0.1, 0.2, 42.0]).assign(label=[0, 1, 5])
    suite = {**SUITE, "expectations": [*SUITE["expectations"], {"type": "expect_column_to_exist", "kwargs": {"column": "z"}}]}
    with pytest.raises(DataGateFailed):
        run_gate(bad, suite=suite, poisoning=False, on_flag="quarantine", clean_path=clean,
                 report_path=tmp_path / "r2.json")
    assert not clean.exists()  # no stale split survives a failed gate


def test_quarantine_cannot_fix_a_table_level_failure(tables: GateData, tmp_path: Path) -> None:
    suite = {"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "age"}}]}
    with pytest.raises(DataGateFailed, match=r"validation:expect_column_to_exist\(age\)"):
        run_gate(tables.clean, suite=suite, poisoning=False, on_flag="quarantine", report_path=tmp_path / "r.json")
    assert "quarantine impossible: table-level" in (tmp_path / "r.txt").read_text()


def test_warn_records_flags_and_lets_the_batch_through(tmp_path: Path) -> None:
    frame = pd.DataFrame({"f0": [0.1, 42.0, 0.3], "label": [0, 1, 0]})
    result = run_gate(frame, suite=SUITE, poisoning=False, report_path=tmp_path / "r.json", on_flag="warn")
    assert (result.verdict, result.action, result.n_flagged) == ("fail", "warned", 1)
    assert result.fired == ("validation:expect_column_values_to_be_between(f0)",)
    assert result.clean is None and result.training_data == result.incoming


def test_dataframe_input_is_identified_by_its_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"f0": [0.1, 0.2, 0.3], "label": [0, 1, 0]})
    result = run_gate(frame, suite=SUITE, poisoning=False, report_path=tmp_path / "r.json")
    assert result.incoming.kind == "table" and result.incoming.rows == 3


# --- bad input: clear errors, nothing written -----------------------------


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path, index=False) if path.suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


GOOD = pd.DataFrame({"f0": [0.1, 0.2, 0.3, 0.4], "f1": [1, 2, 3, 4], "label": [0, 1, 0, 1]})
SCHEMA = {"f0": "float", "f1": "int", "label": "int"}


@pytest.mark.parametrize(("case", "error", "message"), [
    ("missing column", SchemaMismatchError, r"missing column\(s\) \['f1'\]"),
    ("extra column", SchemaMismatchError, r"extra column\(s\) \['f2'\]"),
    ("wrong dtype", SchemaMismatchError, r"wrong dtype: 'f1' is (str|object), expected int"),
    ("empty file", DataInputError, "file is empty"),
    ("header only", DataInputError, "has no rows"),
    ("nan", MissingValuesError, r"'f0' \(1\)"),
    ("no label", MissingLabelColumnError, "label column 'label' not found in the incoming data"),
    ("reference mismatch", SchemaMismatchError, r"reference/incoming schema mismatch - missing from incoming: \['f1'\]"),
    ("unreadable", DataInputError, "not a readable parquet file"),
    ("not found", DataInputError, "file not found"),
    ("unsupported type", DataInputError, "unsupported file type '.xlsx'"),
])
def test_bad_inputs_give_clear_errors(tmp_path: Path, case: str, error: type, message: str) -> None:
    data = tmp_path / "batch.parquet"
    kwargs: dict = {}
    if case == "missing column":
        _write(data, GOOD.drop(columns="f1")); kwargs["schema"] = SCHEMA
    elif case == "extra column":
        _write(data, GOOD.assign(f2=1.0)); kwargs["schema"] = SCHEMA
    elif case == "wrong dtype":
        _write(data, GOOD.assign(f1=["a", "b", "c", "d"])); kwargs["schema"] = SCHEMA
    elif case == "empty file":
        data.write_bytes(b"")
    elif case == "header only":
        data = tmp_path / "batch.csv"; data.write_text("f0,f1,label\n")
    elif case == "nan":
        _write(data, GOOD.assign(f0=[0.1, None, 0.3, 0.4]))
    elif case == "no label":
        _write(data, GOOD.drop(columns="label"))
    elif case == "reference mismatch":
        _write(data, GOOD.drop(columns="f1")); kwargs["reference"] = _write(tmp_path / "ref.csv", GOOD)
    elif case == "unreadable":
        data.write_bytes(b"PAR1 this is not parquet")
    elif case == "not found":
        data = tmp_path / "absent.parquet"
    elif case == "unsupported type":
        data = tmp_path / "batch.xlsx"; data.write_bytes(b"x")
    with pytest.raises(error, match=message):
        run_gate(data, report_path=tmp_path / "out" / "r.json", **kwargs)
    assert not (tmp_path / "out").exists()


def test_gate_opens_a_lineage_span_with_verdict_and_digests(tmp_path: Path) -> None:
    # own process: the global tracer provider can be set only once per process
    code = f"""
import json, pandas as pd
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider(); provider.add_span_processor(SimpleSpanProcessor(exporter)); trace.set_tracer_provider(provider)
from pipeshield.checks.gate import run_gate
pd.DataFrame({{"f0": [0.1, 0.2], "label": [0, 1]}}).to_parquet({str(tmp_path / 'b.parquet')!r})
run_gate({str(tmp_path / 'b.parquet')!r}, suite={SUITE!r}, poisoning=False, report_path={str(tmp_path / 'r.json')!r})
[span] = exporter.get_finished_spans()
print(json.dumps({{"name": span.name, **{{k: (list(v) if isinstance(v, tuple) else v) for k, v in span.attributes.items()}}}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    span = json.loads(out.stdout.strip().splitlines()[-1])
    report = json.loads((tmp_path / "r.json").read_text())
    assert span["name"] == "pipeshield.gate"
    assert span["pipeshield.gate.verdict"] == "pass" and span["pipeshield.gate.fired"] == []
    assert span["pipeshield.dataset.sha256"] == sha256_file(tmp_path / "b.parquet") == report["datasets"]["incoming"]["sha256"]
    assert span["pipeshield.gate.report_sha256"] == hashlib.sha256((tmp_path / "r.json").read_bytes()).hexdigest()


def test_cli_check_exits_non_zero_on_a_flagged_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeshield.cli import main

    data = tmp_path / "batch.csv"
    pd.DataFrame({"f0": [0.1, 42.0, 0.3], "label": [0, 1, 0]}).to_csv(data, index=False)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE))
    args = ["gate", "check", str(data), "--suite", str(suite), "--no-poisoning", "--report", str(tmp_path / "r.json")]
    assert main(args) == 1
    assert "data gate failed: validation:expect_column_values_to_be_between(f0) fired" in capsys.readouterr().err
    assert main([*args, "--on-flag", "quarantine", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["action"] == "quarantined" and result["clean"]["rows"] == 2 and result["quarantine"]["rows"] == 1
