"""The ``pipeshield`` command line. Each sub-command lives in its own module with a ``register`` function."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from pipeshield import __version__
from pipeshield.errors import PipeshieldError


def _command_modules() -> list[str]:
    """Every public module of this package; each defines ``register(subparsers)``."""
    return sorted(
        f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeshield",
        description="Security layer for Airflow 3 ML pipelines and MLflow 3.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (default: $PIPESHIELD_CONFIG or ./pipeshield.toml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    version = subparsers.add_parser("version", help="print the pipeshield version")
    version.set_defaults(func=lambda args: print(__version__) or 0)
    for module_name in _command_modules():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PipeshieldError as exc:
        print(f"pipeshield: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pipeshield: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
