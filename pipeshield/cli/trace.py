"""``pipeshield trace``: a prediction, model version or digest back to its data, each hop checked."""

from __future__ import annotations

import argparse

from pipeshield.cli._common import settings_from

EXIT_MISMATCH = 3
EXIT_UNVERIFIED = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    trace = subparsers.add_parser(
        "trace", help="walk prediction -> model version -> signature -> run -> datasets -> gate reports -> source",
        description=f"Exit status: 0 when no hop is mismatched, {EXIT_MISMATCH} when one is, "
                    f"{EXIT_UNVERIFIED} with --require-verified when a hop is unverifiable.",
    )
    trace.add_argument("ref", help="prediction id, models:/<name>/<version> or sha256:<hex> (model or dataset)")
    trace.add_argument("--json", action="store_true", help="print the tree as JSON")
    trace.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: PIPESHIELD_MLFLOW_TRACKING_URI)")
    trace.add_argument("--ledger", metavar="URL", help="ledger store URL (default: PIPESHIELD_LEDGER_URL or <home>/lineage.db)")
    trace.add_argument("--no-rehash", action="store_true", help="do not re-hash reachable datasets and reports")
    trace.add_argument("--require-verified", action="store_true", help="fail when any hop is unverifiable")
    trace.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    from pipeshield.lineage.ledger import Ledger, default_ledger_url
    from pipeshield.lineage.trace import trace_lineage

    settings = settings_from(args)
    with Ledger(args.ledger or default_ledger_url(settings)) as ledger:
        result = trace_lineage(args.ref, tracking_uri=args.tracking_uri or settings.mlflow_tracking_uri,
                               ledger=ledger, rehash=not args.no_rehash)
    print(result.to_json() if args.json else result.render())
    if result.mismatched:
        return EXIT_MISMATCH
    if args.require_verified and not result.fully_verified:
        return EXIT_UNVERIFIED
    return 0
