"""``pipeshield serve``: serve a verified registered model, MLflow scoring-server compatible."""

from __future__ import annotations

import argparse

from pipeshield.cli._common import settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve a verified model version (/invocations, prediction id header, prediction spans)"
    )
    serve.add_argument("model_uri", help="models:/<name>/<version> or models:/<name>@<alias>")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: PIPESHIELD_MLFLOW_TRACKING_URI)")
    serve.add_argument("--no-prediction-spans", action="store_true", help="serve without prediction spans")
    serve.add_argument("--no-ledger", action="store_true", help="do not record spans in the lineage ledger")
    serve.add_argument(
        "--unsafe-skip-verification", action="store_true",
        help="UNSAFE: serve without checking the model's signature (benchmarks only)",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from pipeshield.lineage import install_ledger
    from pipeshield.lineage.ledger import default_ledger_url
    from pipeshield.lineage.verify import UnsafeUnverifiedDownload
    from pipeshield.serving import load_verified_model, serve

    settings = settings_from(args)
    if not args.no_ledger:
        install_ledger(default_ledger_url(settings), service_name="pipeshield-serve")
    verifier = UnsafeUnverifiedDownload() if args.unsafe_skip_verification else None
    model = load_verified_model(
        args.model_uri, tracking_uri=args.tracking_uri or settings.mlflow_tracking_uri, verifier=verifier,
        spans=not args.no_prediction_spans,
    )
    print(f"pipeshield serve: {model.verified.name} v{model.verified.version} "
          f"(digest {model.verified.manifest_digest[:16]}…, verified={model.verified.verified}) "
          f"on http://{args.host}:{args.port}", flush=True)
    serve(model, host=args.host, port=args.port)  # flushes spans at shutdown
    return 0
