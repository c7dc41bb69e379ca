"""Benchmark of the poisoning portfolio (research notes §5) on scikit-learn's bundled datasets.

Per seed each dataset is split (stratified) into reference 30% / incoming 50% / test 20%; the
incoming split is attacked by our own seeded code and shuffled. Row-level AUROC / AP / hard-flag
precision and recall for the portfolio (with and without the reference), every single check and the
baselines "cleanlab alone" and "IsolationForest alone"; batch verdicts on attacked batches (power) and
on >= 100 clean resamples per dataset (false alarms); downstream test accuracy and backdoor ASR
before / after quarantine; batch power at 1% on the 20k-row synthetic set; runtime at 10k / 30k /
100k x 30 features. The last stdout line is one JSON object.

    python benchmarks/poisoning.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import zlib
from collections import defaultdict

import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from threadpoolctl import threadpool_limits

import _poisoning_attacks as atk
from pipeshield.checks.poisoning import PoisoningConfig, run_poisoning_checks

DATASETS = {"breast_cancer": load_breast_cancer, "digits": load_digits, "wine": load_wine, "iris": load_iris}
FLIP_FAMILY = ("flip_rand_10", "flip_rand_20", "flip_rand_40")
DOWNSTREAM = {"flip_rand_20", "backdoor_oob_5", "backdoor_inb_5", "dup_flip_5", "ood_5"}
UNREFERENCED = PoisoningConfig(unreferenced_checks="always")


def attacks(target_point: np.ndarray, target_label: int) -> dict[str, atk.Attack]:
    return {
        "flip_rand_10": atk.random_flip(0.10),
        "flip_rand_20": atk.random_flip(0.20), "flip_rand_40": atk.random_flip(0.40),
        "flip_cc_20": atk.targeted_flip(0.20), "flip_cc_40": atk.targeted_flip(0.40),
        "flip_cl_20": atk.cl_noise(0.2, 0.0),
        "backdoor_oob_1": atk.backdoor(0.01, False), "backdoor_oob_5": atk.backdoor(0.05, False),
        "backdoor_inb_5": atk.backdoor(0.05, True),
        "collision_3": atk.collision(0.03, target_point, target_label),
        "dup_flip_5": atk.duplicate_flip(0.05), "dup_exact_10": atk.duplicate_exact(0.10),
        "ood_5": atk.ood(0.05),
    }


def frame(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    out["label"] = y
    return out


def split(X: np.ndarray, y: np.ndarray, seed: int):
    X_ref, X_rest, y_ref, y_rest = train_test_split(X, y, train_size=0.3, stratify=y, random_state=seed)
    X_inc, X_test, y_inc, y_test = train_test_split(X_rest, y_rest, train_size=5 / 7, stratify=y_rest,
                                                    random_state=seed)
    return X_ref, y_ref, X_inc, y_inc, X_test, y_test


def iforest_alone(X: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """B2: IsolationForest (200 trees) on the incoming batch; hard flag = its own predict()."""
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(X)
    return -forest.score_samples(X), forest.predict(X) == -1


def row_metrics(truth: np.ndarray, scores: np.ndarray | None, hard: np.ndarray | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if scores is not None and 0 < truth.sum() < len(truth):
        out["auroc"] = float(roc_auc_score(truth, scores))
        out["ap"] = float(average_precision_score(truth, scores))
    if hard is not None and truth.any():
        tp = int((hard & truth).sum())
        out["precision"] = tp / hard.sum() if hard.sum() else 0.0
        out["recall"] = tp / truth.sum()
    return out


def downstream(X_train, y_train, X_test, y_test, trigger, seed) -> tuple[float, float | None]:
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, early_stopping=False,
                                           random_state=seed)
    model.fit(X_train, y_train)
    accuracy = float((model.predict(X_test) == y_test).mean())
    if trigger is None:
        return accuracy, None
    features, values, target = trigger
    stamped = X_test[y_test != target].copy()
    stamped[:, features] = values
    return accuracy, float((model.predict(stamped) == target).mean())


def hard_mask(report, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[list(report.flagged_rows)] = True
    return mask


def run_cell(name, X, y, seed, attack_id, rows, verdicts, effects, clean_models):
    X_ref, y_ref, X_inc, y_inc, X_test, y_test = split(X, y, seed)
    rng = np.random.default_rng([seed, zlib.crc32(attack_id.encode())])
    t = int(rng.integers(len(y_test)))
    attack = attacks(X_test[t], int(y_test[t]))[attack_id]
    Xa, ya, truth, trigger = attack(X_inc, y_inc, rng)
    order = rng.permutation(len(ya))
    Xa, ya, truth = Xa[order], ya[order], truth[order]
    ref_frame = frame(X_ref, y_ref)
    report = run_poisoning_checks(frame(Xa, ya), label_column="label", reference=ref_frame,
                                  config=PoisoningConfig(seed=seed))
    noref = run_poisoning_checks(frame(Xa, ya), label_column="label", config=UNREFERENCED)
    # B1 "cleanlab alone" is the unreferenced report's oof_label_issues check (same definition)
    cl = noref.check("oof_label_issues")
    cl_scores, cl_mask = cl.scores, np.isin(np.arange(len(ya)), cl.flagged_rows)
    if_scores, if_mask = iforest_alone(Xa, seed)
    detectors = {
        "portfolio": (report.row_scores, hard_mask(report, len(ya))),
        "portfolio_noref": (noref.row_scores, hard_mask(noref, len(ya))),
        "cleanlab_alone": (cl_scores, cl_mask),
        "iforest_alone": (if_scores, if_mask),
    }
    for source in (report, noref):
        for check in source.checks:
            if check.scores is not None and check.name not in detectors:
                m = np.zeros(len(ya), bool)
                m[list(check.flagged_rows)] = True
                detectors[check.name] = (check.scores, m)
    for det, (scores, hard) in detectors.items():
        rows[(name, attack_id, det)].append(row_metrics(truth, scores, hard))
    verdicts[(name, attack_id)].append(report.verdict == "fail")
    verdicts[(name + "/noref", attack_id)].append(noref.verdict == "fail")
    if attack_id in DOWNSTREAM:
        key = (name, seed)
        if key not in clean_models:
            clean_models[key] = downstream(np.vstack([X_ref, X_inc]), np.r_[y_ref, y_inc], X_test, y_test,
                                           None, seed)[0]
        keep = ~hard_mask(report, len(ya))
        acc_before, asr_before = downstream(np.vstack([X_ref, Xa]), np.r_[y_ref, ya], X_test, y_test, trigger, seed)
        acc_after, asr_after = downstream(np.vstack([X_ref, Xa[keep]]), np.r_[y_ref, ya[keep]], X_test, y_test,
                                          trigger, seed)
        effects[(name, attack_id)].append({"acc_clean": clean_models[key], "acc_before": acc_before,
                                           "acc_after": acc_after, "asr_before": asr_before,
                                           "asr_after": asr_after})


def clean_false_alarms(name, X, y, resamples) -> dict[str, float]:
    fails, fired = 0, defaultdict(int)
    for r in range(resamples):
        X_ref, y_ref, X_inc, y_inc, _, _ = split(X, y, 1000 + r)
        report = run_poisoning_checks(frame(X_inc, y_inc), label_column="label", reference=frame(X_ref, y_ref),
                                      config=PoisoningConfig(seed=r))
        fails += report.verdict == "fail"
        for check in report.fired:
            fired[check] += 1
    return {"false_alarm": fails / resamples, "resamples": resamples,
            "fired_by_check": {k: v / resamples for k, v in sorted(fired.items())}}


def synthetic_power(n_rows: int, seeds: int) -> dict[str, dict[str, float]]:
    """Batch verdicts at 1% flips / 1% out-of-range backdoor / none on the 20k-row synthetic set."""
    out: dict[str, dict[str, float]] = {}
    cases = {"none": None, "flip_rand_1": atk.random_flip(0.01), "backdoor_oob_1": atk.backdoor(0.01, False),
             }
    for case, attack in cases.items():
        fails, label_fired, aps = 0, 0, []
        for seed in range(seeds):
            X, y = make_classification(n_samples=n_rows, n_features=20, n_informative=10, n_classes=3,
                                       class_sep=1.0, flip_y=0, random_state=seed)
            X_ref, y_ref, X_inc, y_inc, _, _ = split(X, y, seed)
            truth = np.zeros(len(y_inc), bool)
            if attack is not None:
                X_inc, y_inc, truth, _ = attack(X_inc, y_inc, np.random.default_rng(seed))
            report = run_poisoning_checks(frame(X_inc, y_inc), label_column="label", reference=frame(X_ref, y_ref),
                                          config=PoisoningConfig(seed=seed))
            fails += report.verdict == "fail"
            label_fired += "reference_label" in report.fired
            if truth.any():
                aps.append(average_precision_score(truth, report.row_scores))
        out[case] = {"gate_fail_rate": fails / seeds, "label_test_fail_rate": label_fired / seeds,
                     "portfolio_ap": float(np.mean(aps)) if aps else float("nan"), "seeds": seeds}
    return out


def scaling(sizes: list[int]) -> dict[int, dict[str, float]]:
    out = {}
    for n in sizes:
        n_ref = int(0.6 * n)
        X, y = make_classification(n_samples=n + n_ref, n_features=30, n_informative=10, n_classes=3,
                                   flip_y=0, random_state=0)
        inc, ref = frame(X[:n], y[:n]), frame(X[n:], y[n:])
        started = time.perf_counter()
        report = run_poisoning_checks(inc, label_column="label", reference=ref)
        seconds = time.perf_counter() - started
        out[n] = {"seconds": seconds, "rows_per_s": n / seconds, "reference_rows": n_ref,
                  "per_check_seconds": {c.name: round(c.seconds, 2) for c in report.checks}}
        print(f"scaling {n:>7} rows x 30 (+{n_ref} reference): {seconds:7.1f} s  {n / seconds:9.0f} rows/s",
              file=sys.stderr)
    return out


def mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI subset (one dataset, one seed)")
    args = parser.parse_args()
    # one thread per native pool: on this shared 2-core machine OpenMP/BLAS threads only contend
    threadpool_limits(1)
    if args.quick:
        datasets, seeds = ["breast_cancer"], [0]
        attack_ids = ["flip_rand_10", "backdoor_oob_5", "backdoor_inb_5", "dup_flip_5", "ood_5"]
        resamples, synth_rows, synth_seeds, sizes = 5, 3000, 2, [1000, 3000]
    else:
        datasets, seeds = list(DATASETS), [0, 1, 2]
        attack_ids = list(attacks(np.zeros(1), 0))
        resamples, synth_rows, synth_seeds, sizes = 100, 20000, 10, [10000, 30000, 100000]
    started = time.perf_counter()
    rows, verdicts, effects, clean_models = defaultdict(list), defaultdict(list), defaultdict(list), {}
    false_alarms = {}
    for name in datasets:
        X, y = DATASETS[name](return_X_y=True)
        X = X.astype(float)
        for attack_id in attack_ids:
            for seed in seeds:
                run_cell(name, X, y, seed, attack_id, rows, verdicts, effects, clean_models)
        false_alarms[name] = clean_false_alarms(name, X, y, resamples)
        print(f"{name}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    synth = synthetic_power(synth_rows, synth_seeds)
    timing = scaling(sizes)

    # ---- aggregate: mean over datasets x seeds per attack and detector
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    detectors = sorted({k[2] for k in rows})
    for attack_id in attack_ids:
        for det in detectors:
            cells = [m for name in datasets for m in rows.get((name, attack_id, det), [])]
            if cells:
                table[attack_id][det] = {metric: mean(c.get(metric) for c in cells)
                                         for metric in ("auroc", "ap", "precision", "recall")}
    print(f"\n{'attack':<18} {'detector':<27} {'AUROC':>6} {'AP':>6} {'prec':>6} {'recall':>6}")
    for attack_id in attack_ids:
        for det in ("portfolio", "portfolio_noref", "cleanlab_alone", "iforest_alone", "reference_label",
                    "reference_novelty", "duplicates"):
            m = table[attack_id].get(det)
            if m:
                print(f"{attack_id:<18} {det:<27} {m['auroc']:6.3f} {m['ap']:6.3f} {m['precision']:6.3f} "
                      f"{m['recall']:6.3f}")
    margins, ap_ratios, ap_ratios_noref = {}, {}, {}
    singles = [d for d in detectors if d not in ("portfolio", "portfolio_noref")]
    for attack_id in attack_ids:
        t = table[attack_id]
        margins[attack_id] = t["portfolio"]["auroc"] - max(t["cleanlab_alone"]["auroc"], t["iforest_alone"]["auroc"])
        best = max(t[d]["ap"] for d in singles if d in t and not math.isnan(t[d]["ap"]))
        ap_ratios[attack_id] = t["portfolio"]["ap"] / best if best > 0 else float("nan")
        ap_ratios_noref[attack_id] = t["portfolio_noref"]["ap"] / best if best > 0 else float("nan")
    batch = {f"{name}:{a}": float(np.mean(verdicts[(name, a)])) for name in datasets for a in attack_ids}
    effect_table = {f"{a}": {k: mean(e[k] for name in datasets for e in effects.get((name, a), []))
                             for k in ("acc_clean", "acc_before", "acc_after", "asr_before", "asr_after")}
                    for a in attack_ids if a in DOWNSTREAM}
    print("\ndownstream (HGB on reference + incoming; mean over datasets x seeds)")
    for a, e in effect_table.items():
        print(f"  {a:<16} acc clean {e['acc_clean']:.3f} poisoned {e['acc_before']:.3f} after quarantine "
              f"{e['acc_after']:.3f}  ASR {e['asr_before']:.3f} -> {e['asr_after']:.3f}")
    print("\nfalse alarms on clean batches:", {k: v["false_alarm"] for k, v in false_alarms.items()})
    print("synthetic 1% power:", {k: v["gate_fail_rate"] for k, v in synth.items()})
    family = [a for a in attack_ids if a != "dup_exact_10"]
    oob = "backdoor_oob_5"
    size_max = max(sizes)
    t_small, t_big = timing[min(sizes)]["seconds"], timing[size_max]["seconds"]
    growth = math.log(t_big / t_small) / math.log(size_max / min(sizes))
    result = {
        "quick": args.quick,
        "min_auroc_margin": min(margins[a] for a in family),
        "min_ap_ratio_vs_best_single": min(ap_ratios[a] for a in family),
        "flip_ap": mean(table[a]["portfolio"]["ap"] for a in FLIP_FAMILY if a in table),
        "ood_ap": table["ood_5"]["portfolio"]["ap"] if "ood_5" in table else float("nan"),
        "dup_recall": table["dup_flip_5"]["portfolio"]["recall"],
        "oob_backdoor_ap": table[oob]["portfolio"]["ap"],
        "oob_backdoor_asr_before": effect_table[oob]["asr_before"],
        "oob_backdoor_asr_after": effect_table[oob]["asr_after"],
        "inrange_backdoor_ap": table["backdoor_inb_5"]["portfolio"]["ap"],
        "clean_false_alarm": max([v["false_alarm"] for v in false_alarms.values()] +
                                 [synth["none"]["gate_fail_rate"]]),
        "batch_power_1pct": min(synth["flip_rand_1"]["gate_fail_rate"], synth["backdoor_oob_1"]["gate_fail_rate"]),
        "rows_per_s_100k": timing[size_max]["rows_per_s"],
        "scaling_rows": sizes,
        "scaling_seconds": [timing[n]["seconds"] for n in sizes],
        "time_growth_exponent": growth,
        "nlogn_exponent_bound": math.log((size_max * math.log(size_max)) / (min(sizes) * math.log(min(sizes))))
        / math.log(size_max / min(sizes)),
        "auroc_margin_by_attack": margins,
        "ap_ratio_by_attack": ap_ratios,
        "ap_ratio_noref_by_attack": ap_ratios_noref,
        "table": table,
        "batch_fail_rate": batch,
        "downstream": effect_table,
        "false_alarms": false_alarms,
        "synthetic_1pct": synth,
        "scaling": {str(k): v for k, v in timing.items()},
        "datasets": datasets, "seeds": seeds, "clean_resamples": resamples,
        "synthetic_rows": synth_rows, "synthetic_seeds": synth_seeds,
        "native_threads": 1,
        "versions": {"python": platform.python_version(), "sklearn": sklearn.__version__,
                     "numpy": np.__version__},
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(_json_safe(result), allow_nan=False))


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


if __name__ == "__main__":
    main()
