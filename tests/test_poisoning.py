"""The poisoning portfolio: each check fires on its attack family, stays quiet on clean data, and bad
input is refused with an error naming the problem. Small seeded data; every run takes ~1 s."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from pipeshield.checks.errors import (
    CheckConfigError,
    DataCheckError,
    EmptyDataError,
    MissingLabelColumnError,
    MissingValuesError,
    SchemaMismatchError,
    UnsupportedFeatureError,
)
from pipeshield.checks.poisoning import CheckSettings, PoisoningConfig, run_poisoning_checks
from pipeshield.checks.poisoning import _row_scores
from pipeshield.checks.poisoning._calibration import pooled_fisher_test, row_p_values
from pipeshield.checks.poisoning._report import CheckResult
from pipeshield.errors import PipeshieldError

NO_REF = PoisoningConfig(unreferenced_checks="always")


def _frame(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    out["label"] = y
    return out


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    X, y = make_classification(n_samples=800, n_features=8, n_informative=5, n_redundant=0, n_classes=3,
                               class_sep=2.0, flip_y=0, random_state=0)
    return _frame(X[:400], y[:400]), _frame(X[400:], y[400:])


def _recall(flagged: tuple[int, ...], truth: np.ndarray) -> float:
    return float(np.isin(np.flatnonzero(truth), flagged).mean())


def _flip(incoming: pd.DataFrame, rate: float, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = incoming.copy()
    idx = rng.choice(len(out), int(rate * len(out)), replace=False)
    out.loc[idx, "label"] = (out.loc[idx, "label"] + 1) % 3
    truth = np.zeros(len(out), bool)
    truth[idx] = True
    return out, truth


def _append(incoming: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    out = pd.concat([incoming, rows], ignore_index=True)
    return out, np.r_[np.zeros(len(incoming), bool), np.ones(len(rows), bool)]


def _ood(incoming: pd.DataFrame, k: int, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    features = incoming.drop(columns="label")
    span = features.max() - features.min()
    X = rng.uniform(features.min() - span, features.max() + span, (k, features.shape[1]))
    return _frame(X, rng.integers(0, 3, k))


def _backdoor(incoming: pd.DataFrame, k: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    source = incoming[incoming["label"] != 0].sample(k, random_state=seed, replace=True).copy()
    for column in ("f0", "f1", "f2"):
        source[column] = incoming[column].max() + 3 * incoming[column].std() + 1
    source["label"] = 0
    return source.reset_index(drop=True).iloc[rng.permutation(k)]


# --- clean data ------------------------------------------------------------------------------


def test_clean_batch_passes_with_reference(data) -> None:
    reference, incoming = data
    report = run_poisoning_checks(incoming, label_column="label", reference=reference)
    assert report.verdict == "pass", report.summary()
    assert len(report.flagged_rows) <= 0.03 * len(incoming)
    names = [c.name for c in report.checks]
    assert names[:3] == ["schema", "provenance", "duplicates"]  # cheapest first
    assert {"reference_label", "reference_novelty", "feature_drift", "classifier_drift"} <= set(names)
    payload = json.loads(json.dumps(report.to_dict(include_scores=True)))
    assert payload["verdict"] == "pass" and len(payload["row_scores"]) == len(incoming)
    assert payload["incoming_sha256"] and payload["reference_sha256"]
    assert report.summary().startswith("poisoning checks: PASS")


def test_clean_batch_passes_without_reference(data) -> None:
    _, incoming = data
    report = run_poisoning_checks(incoming, label_column="label")
    assert report.verdict == "pass", report.summary()
    assert "oof_label_issues" in [c.name for c in report.checks]
    assert report.check("provenance").skipped


# --- each check on its attack family ---------------------------------------------------------


def test_reference_label_check_catches_label_flips(data) -> None:
    reference, incoming = data
    attacked, truth = _flip(incoming, 0.10)
    report = run_poisoning_checks(attacked, label_column="label", reference=reference)
    check = report.check("reference_label")
    assert check.fired and check.p_value < check.threshold
    assert _recall(check.flagged_rows, truth) >= 0.8
    assert truth[list(check.flagged_rows)].mean() >= 0.8
    assert "reference_label" in report.summary()


def test_reference_novelty_check_catches_out_of_distribution_rows(data) -> None:
    reference, incoming = data
    attacked, truth = _append(incoming, _ood(incoming, 20))
    report = run_poisoning_checks(attacked, label_column="label", reference=reference)
    assert report.check("reference_novelty").fired
    assert _recall(report.check("reference_novelty").flagged_rows, truth) >= 0.9


def test_duplicates_with_conflicting_labels_are_all_flagged(data) -> None:
    reference, incoming = data
    copies = pd.concat([incoming.iloc[:4]] * 5, ignore_index=True)
    copies["label"] = (copies["label"] + 1) % 3
    attacked, truth = _append(incoming, copies)
    report = run_poisoning_checks(attacked, label_column="label", reference=reference)
    check = report.check("duplicates")
    assert check.fired and check.statistics["conflicting_groups"] == 4
    assert _recall(check.flagged_rows, truth) == 1.0
    assert set(report.flagged_rows) >= set(np.flatnonzero(truth))


def test_duplicate_of_a_trusted_row_flags_only_the_disagreeing_copy(data) -> None:
    reference, incoming = data
    copy = reference.iloc[[0]].copy()
    copy["label"] = (copy["label"] + 1) % 3
    attacked, truth = _append(incoming, pd.concat([reference.iloc[[0]], copy], ignore_index=True))
    report = run_poisoning_checks(attacked, label_column="label", reference=reference)
    assert report.check("duplicates").flagged_rows == (len(attacked) - 1,)


def test_out_of_range_backdoor_is_caught_by_novelty_and_trigger_mining(data) -> None:
    reference, incoming = data
    attacked, truth = _append(incoming, _backdoor(incoming, 20))
    report = run_poisoning_checks(attacked, label_column="label", reference=reference)
    assert report.check("reference_novelty").fired
    assert report.check("trigger_mining").fired
    bins = report.check("trigger_mining").statistics["suspect_bins"]
    assert sorted(b["feature"] for b in bins) == ["f0", "f1", "f2"]
    assert _recall(report.check("trigger_mining").flagged_rows, truth) == 1.0
    clean, quarantine = report.split(attacked)
    assert len(clean) + len(quarantine) == len(attacked)
    assert truth[quarantine.index].sum() == truth.sum()


def test_provenance_detects_changed_and_deleted_rows(data) -> None:
    reference, _ = data
    keyed = reference.assign(row_id=np.arange(len(reference)))
    snapshot = keyed.copy()
    snapshot.loc[5, "f3"] += 0.5  # changed under the same key
    snapshot = snapshot.drop(index=[7])  # deleted
    config = PoisoningConfig(key_columns=("row_id",), expect_reference_rows=True)
    report = run_poisoning_checks(snapshot.reset_index(drop=True), label_column="label", reference=keyed,
                                  config=config)
    check = report.check("provenance")
    assert check.fired
    assert check.statistics["changed_rows"] == 1 and check.statistics["deleted_rows"] == 2
    assert check.flagged_rows == (5,)


def test_schema_check_fires_on_a_label_the_reference_never_had(data) -> None:
    reference, incoming = data
    attacked = incoming.copy()
    attacked.loc[:2, "label"] = 7
    report = run_poisoning_checks(attacked, label_column="label", reference=reference)
    assert report.check("schema").fired
    assert report.check("schema").flagged_rows == (0, 1, 2)


def test_drift_checks_fire_on_gross_shift_only(data) -> None:
    reference, incoming = data
    shifted = incoming.assign(f4=incoming["f4"] + 3.0)
    report = run_poisoning_checks(shifted, label_column="label", reference=reference)
    assert report.check("feature_drift").fired
    assert report.check("feature_drift").statistics["most_shifted"] == "f4"
    assert report.check("classifier_drift").fired


def test_unreferenced_checks_fire_on_their_families(data) -> None:
    _, incoming = data
    flipped, _ = _flip(incoming, 0.2)
    fired = run_poisoning_checks(flipped, label_column="label", config=NO_REF).fired
    assert {"oof_label_issues", "knn_label_agreement"} <= set(fired)
    ood, _ = _append(incoming, _ood(incoming, 40))
    report = run_poisoning_checks(ood, label_column="label", config=NO_REF)
    print(report.summary())
    assert {"isolation_forest", "isolation_forest_per_class"} <= set(report.fired)
    backdoored, truth = _append(incoming, _backdoor(incoming, 30))
    report = run_poisoning_checks(backdoored, label_column="label", config=NO_REF)
    assert {"trigger_mining", "spectral_signatures"} <= set(report.fired)
    assert _recall(report.check("trigger_mining").flagged_rows, truth) == 1.0


def test_per_check_settings_disable_and_override(data) -> None:
    reference, incoming = data
    attacked, _ = _flip(incoming, 0.10)
    config = PoisoningConfig(checks={"reference_label": CheckSettings(enabled=False),
                                     "reference_novelty": CheckSettings(alpha=0.5)})
    report = run_poisoning_checks(attacked, label_column="label", reference=reference, config=config)
    assert "reference_label" not in [c.name for c in report.checks]
    assert report.check("reference_novelty").threshold == 0.5


def test_categorical_features_are_one_hot_encoded_and_unseen_values_reported(data) -> None:
    reference, incoming = data
    colours = np.array(["red", "green", "blue"])
    ref = reference.assign(colour=colours[reference["label"].to_numpy()])
    inc = incoming.assign(colour=colours[incoming["label"].to_numpy()])
    assert run_poisoning_checks(inc, label_column="label", reference=ref).verdict == "pass"
    inc.loc[0, "colour"] = "purple"
    report = run_poisoning_checks(inc, label_column="label", reference=ref)
    assert report.check("schema").statistics["unseen_categories"] == {"colour": ["purple"]}
    assert report.check("schema").fired


# --- calibration -----------------------------------------------------------------------------


def test_pooled_count_test_holds_its_level_under_the_null() -> None:
    rng = np.random.default_rng(0)
    rejections = 0
    for _ in range(300):
        scores = rng.exponential(size=500)
        p, _ = pooled_fisher_test(scores[:200], scores[200:], (0.8, 0.9, 0.95, 0.99), 3, rng, draws=2000)
        rejections += p <= 0.05
    assert rejections / 300 <= 0.08


def test_row_p_values_are_ordered_beyond_the_reference_maximum() -> None:
    ref = np.linspace(0, 1, 99)
    p = row_p_values(ref, np.array([0.5, 1.0, 1.5, 3.0]))
    assert p[0] == pytest.approx(0.5, abs=0.02)
    assert p[1] > p[2] > p[3] > 0


def test_row_p_values_keep_score_order_between_reference_scores() -> None:
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    scores = np.array([1.2, 1.5, 1.8])
    p = row_p_values(ref, scores)
    assert p[0] > p[1] > p[2]
    plain = (1 + (ref[None, :] >= scores[:, None]).sum(axis=1)) / 5  # conformal, ties between 1 and 2
    strict = (1 + (ref[None, :] > scores[:, None]).sum(axis=1)) / 5
    assert np.all(p <= plain) and np.all(p >= strict - 1 / 5)


def test_row_order_is_not_led_by_a_check_that_sees_nothing() -> None:
    """Five rows far beyond the reference on one check outrank a chance minimum on a silent check."""
    rng = np.random.default_rng(0)
    label_p = rng.uniform(0.02, 1.0, 100)
    label_p[:5] = 0.003
    novelty_p = rng.uniform(0.0, 1.0, 100)
    novelty_p[50] = 0.001  # the smallest p-value of the batch, on a check with no signal
    checks = [CheckResult("reference_label", "reference", False, row_p_values=label_p),
              CheckResult("reference_novelty", "reference", False, row_p_values=novelty_p)]
    order = np.argsort(-_row_scores(checks, 100))
    assert set(order[:5].tolist()) == {0, 1, 2, 3, 4}


# --- bad input -------------------------------------------------------------------------------


def test_missing_label_column(data) -> None:
    reference, incoming = data
    with pytest.raises(MissingLabelColumnError, match="'target'.*incoming"):
        run_poisoning_checks(incoming, label_column="target", reference=reference)
    with pytest.raises(MissingLabelColumnError, match="reference"):
        run_poisoning_checks(incoming, label_column="label", reference=reference.drop(columns="label"))


def test_schema_mismatch_names_the_columns(data) -> None:
    reference, incoming = data
    with pytest.raises(SchemaMismatchError, match=r"missing from incoming: \['f7'\].*not in reference: \['extra'\]"):
        run_poisoning_checks(incoming.drop(columns="f7").assign(extra=1.0), label_column="label",
                             reference=reference)
    with pytest.raises(SchemaMismatchError, match="'f2'.*categorical"):
        run_poisoning_checks(incoming.assign(f2="x"), label_column="label", reference=reference)


def test_empty_data(data) -> None:
    reference, incoming = data
    with pytest.raises(EmptyDataError, match="incoming data has no rows"):
        run_poisoning_checks(incoming.iloc[:0], label_column="label", reference=reference)
    with pytest.raises(EmptyDataError, match="no feature columns"):
        run_poisoning_checks(incoming[["label"]], label_column="label")


def test_missing_values_are_refused_with_counts(data) -> None:
    reference, incoming = data
    holes = incoming.copy()
    holes.loc[[1, 2], "f3"] = np.nan
    holes.loc[4, "f5"] = np.inf
    with pytest.raises(MissingValuesError, match=r"incoming.*'f3' \(2\), 'f5' \(1\)") as info:
        run_poisoning_checks(holes, label_column="label", reference=reference)
    assert info.value.counts == {"f3": 2, "f5": 1}
    no_label = incoming.astype({"label": float})
    no_label.loc[0, "label"] = np.nan
    with pytest.raises(MissingValuesError, match="'label'"):
        run_poisoning_checks(no_label, label_column="label")


def test_unsupported_features_are_named(data) -> None:
    _, incoming = data
    with pytest.raises(UnsupportedFeatureError, match="'when'.*datetime"):
        run_poisoning_checks(incoming.assign(when=pd.Timestamp("2026-01-01")), label_column="label")
    with pytest.raises(UnsupportedFeatureError, match="'user'.*400 distinct"):
        run_poisoning_checks(incoming.assign(user=[f"u{i}" for i in range(len(incoming))]), label_column="label")
    ok = run_poisoning_checks(incoming.assign(user=[f"u{i}" for i in range(len(incoming))]), label_column="label",
                              config=PoisoningConfig(exclude_columns=("user",), unreferenced_checks="never"))
    assert ok.n_rows == len(incoming)


def test_bad_arguments_and_config() -> None:
    with pytest.raises(DataCheckError, match="DataFrame"):
        run_poisoning_checks([[1, 2]], label_column="label")  # type: ignore[arg-type]
    with pytest.raises(CheckConfigError, match="unknown check"):
        PoisoningConfig(checks={"nope": CheckSettings()})
    with pytest.raises(CheckConfigError, match="alpha"):
        PoisoningConfig(alpha=1.5)
    assert issubclass(DataCheckError, PipeshieldError)
