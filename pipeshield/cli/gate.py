"""``pipeshield gate check``: run the data gate (validation + poisoning checks) on a batch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeshield.cli._common import settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    gate = subparsers.add_parser("gate", help="data gate before training")
    commands = gate.add_subparsers(dest="gate_command", metavar="ACTION", required=True)
    check = commands.add_parser("check", help="validate and poisoning-check a parquet/CSV batch; exit 1 if it fails")
    check.add_argument("data", help="parquet or CSV file")
    check.add_argument("--report", required=True, metavar="FILE.json", help="report path (summary goes to FILE.txt)")
    check.add_argument("--reference", metavar="FILE", help="trusted reference batch (last approved snapshot)")
    check.add_argument("--suite", metavar="FILE", help="Great Expectations suite (JSON/YAML)")
    check.add_argument("--label", metavar="COLUMN", help="label column (default: PIPESHIELD_GATE_LABEL_COLUMN)")
    check.add_argument("--on-flag", choices=("fail", "quarantine", "warn"), help="default: PIPESHIELD_GATE_ON_FLAG")
    check.add_argument("--clean", metavar="FILE", help="clean split (quarantine mode)")
    check.add_argument("--quarantine", metavar="FILE", help="quarantined rows (quarantine mode)")
    check.add_argument("--no-poisoning", action="store_true", help="validation only")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from pipeshield.checks.gate import run_gate

    settings = settings_from(args)
    result = run_gate(
        args.data, report_path=args.report, reference=args.reference, suite=args.suite,
        label_column=args.label or settings.gate_label_column, on_flag=args.on_flag or settings.gate_on_flag,
        poisoning=not args.no_poisoning, clean_path=args.clean, quarantine_path=args.quarantine,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(Path(result.report_path).with_suffix(".txt").read_text(encoding="utf-8"), end="")
        print(f"report: {result.report_path} (sha256 {result.report_sha256})")
    return 0
