"""``pipeshield sign`` and ``pipeshield verify``: sign a model directory, verify a directory or a registry URI."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pipeshield._progress import ProgressBar
from pipeshield.cli._common import settings_from
from pipeshield.datasets import sha256_file
from pipeshield.errors import ConfigError, ModelPathError, SignatureError
from pipeshield.keys import open_key_provider
from pipeshield.scan import ScanPolicy, allowed
from pipeshield.signing import (
    RESERVED_FILES,
    ArtifactDigest,
    ModelBindings,
    TrustedKeys,
    VerificationResult,
    copy_verified,
    sign_model,
    verify_model,
)
from pipeshield.signing._results import FAILURE_ERRORS
from pipeshield.signing._files import GIT_PATHS, list_model_files
from pipeshield.signing.resolve import resolve_model


def register(subparsers: argparse._SubParsersAction) -> None:
    sign = subparsers.add_parser("sign", help="scan and sign a model directory (OMS format, with bindings and ML-BOM)")
    sign.add_argument("model_dir", type=Path)
    _binding_arguments(sign, signing=True)
    sign.add_argument("--allow-global", action="append", default=[], metavar="MODULE.NAME",
                      help="pickle global to accept beyond picklescan's safe list ('module.*' for a whole module)")
    sign.add_argument("--max-scan-bytes", type=int, default=ScanPolicy.max_file_bytes, metavar="N")
    sign.add_argument("--scan-timeout", type=float, default=ScanPolicy.timeout_seconds, metavar="SECONDS")
    sign.set_defaults(func=_sign)

    verify = subparsers.add_parser("verify", help="verify a signed model: a directory or a registry URI (models:/...)")
    verify.add_argument("target", help="model directory, or a URI handled by a registered resolver")
    _binding_arguments(verify, signing=False)
    verify.add_argument("--public-key", type=Path, metavar="PEM",
                        help="trust this public key (from `pipeshield keys public-key`) instead of the key provider")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument("--copy-to", type=Path, metavar="DIR",
                        help="copy the model to the new directory DIR and verify the copy (load the model from DIR)")
    verify.set_defaults(func=_verify)


def _binding_arguments(parser: argparse.ArgumentParser, *, signing: bool) -> None:
    verb = "bind" if signing else "expect"
    parser.add_argument("--name", help=f"registered model name to {verb}" + (" (default: directory name)" if signing else ""))
    parser.add_argument("--version", type=int, help=f"registry version to {verb}")
    parser.add_argument("--model-id", help=f"MLflow logged-model id to {verb}")
    parser.add_argument("--run-id", help=f"MLflow run id to {verb}")
    parser.add_argument("--source", help=f"artifact source URI to {verb}")
    parser.add_argument("--dataset", action="append", default=[], metavar="URI[=SHA256]",
                        help=f"training dataset to {verb}; a local file is hashed when SHA256 is omitted")
    parser.add_argument("--gate-report", action="append", default=[], metavar="URI[=SHA256]",
                        help=f"data-gate report to {verb}; a local file is hashed when SHA256 is omitted")
    parser.add_argument("--key", help="signing key name (default: PIPESHIELD_SIGNING_KEY)")
    parser.add_argument("--workers", type=int, help="files hashed in parallel (default: one per CPU)")


def _artifact(spec: str) -> ArtifactDigest:
    uri, sep, digest = spec.rpartition("=")
    if sep and len(digest) == 64:
        return ArtifactDigest(uri=uri, sha256=digest.lower())
    if not Path(spec).is_file():
        raise ConfigError(spec, "give URI=SHA256, or the path of a local file to hash")
    return ArtifactDigest(uri=spec, sha256=sha256_file(spec))


def _bindings(args: argparse.Namespace, name: str | None) -> ModelBindings:
    return ModelBindings(name=name, version=args.version, model_id=args.model_id, run_id=args.run_id,
                         source=args.source, datasets=tuple(_artifact(s) for s in args.dataset),
                         gate_reports=tuple(_artifact(s) for s in args.gate_report))


def _progress(model_dir: Path, label: str) -> ProgressBar:
    try:
        files, _ = list_model_files(model_dir, RESERVED_FILES + GIT_PATHS)
    except ModelPathError:
        files = {}  # signing or verification reports the path problem itself
    return ProgressBar(sum(p.stat().st_size for p in files.values()), label)


def _sign(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    model_dir: Path = args.model_dir
    name = args.name or model_dir.resolve().name
    bindings = _bindings(args, name)
    policy = ScanPolicy(allowed(args.allow_global), args.max_scan_bytes, args.scan_timeout)
    key = args.key or settings.signing_key
    with open_key_provider(settings) as provider, _progress(model_dir, "hashing") as bar:
        signed = sign_model(model_dir, provider, key, bindings, workers=args.workers, progress=bar,
                            scan_policy=policy)
    print(f"signed {name!r}: {len(signed.files)} files, {signed.total_bytes:,} bytes, key {key!r} "
          f"v{signed.key_version}\nroot digest {signed.root_digest}\nsignature {signed.signature_path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    key = args.key or settings.signing_key
    with resolve_model(args.target, settings) as resolved:
        expected = _merge(resolved.expected, _bindings(args, args.name))
        if args.public_key:
            keys = TrustedKeys.from_pem(args.public_key.read_text(encoding="ascii"), key_name=str(args.public_key))
        else:
            with open_key_provider(settings) as provider:
                keys = TrustedKeys.from_provider(provider, key)
        with _progress(resolved.path, "verifying") as bar:
            if args.copy_to:
                result = _verify_copy(resolved.path, args.copy_to, keys, expected, args.workers, bar)
            else:
                result = verify_model(resolved.path, keys, expected=expected, workers=args.workers, progress=bar)
    if args.json:
        contents = result.contents
        print(json.dumps({"ok": result.ok, "reason": result.reason, "kind": result.kind, "subject": result.subject,
                          "root_digest": contents.root_digest if contents else None,
                          "key_version": contents.key_version if contents else None,
                          "bindings": contents.bindings.to_dict() if contents else None}, indent=2))
        return 0 if result.ok else 1
    result.raise_for_failure()
    print(result.reason)
    return 0


def _verify_copy(source: Path, dest: Path, keys: TrustedKeys, expected: ModelBindings, workers: int | None,
                 bar: ProgressBar) -> VerificationResult:
    try:
        contents = copy_verified(source, dest, keys, expected=expected, workers=workers, progress=bar)
    except SignatureError as exc:
        kind = next(k for k, error in FAILURE_ERRORS.items() if isinstance(exc, error))
        return VerificationResult.failure(kind, str(exc), exc.subject)
    return VerificationResult.success(f"verified copy of {contents.bindings.name!r} in {str(dest)!r}", contents)


def _merge(base: ModelBindings, flags: ModelBindings) -> ModelBindings:
    """``base`` with every binding given on the command line replaced by the flag's value."""
    changes = {f.name: getattr(flags, f.name) for f in dataclasses.fields(flags) if getattr(flags, f.name)}
    return dataclasses.replace(base, **changes)
