"""``pipeshield encrypt | decrypt | rewrap | inspect``: envelope-encrypt files with the configured key provider."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pipeshield._progress import ProgressBar
from pipeshield.cli._common import provider_from, settings_from
from pipeshield.envelope import (
    DEFAULT_CHUNK_SIZE,
    Context,
    EnvelopeResult,
    decrypt_file,
    encrypt_file,
    inspect_file,
    rewrap_file,
)
from pipeshield.errors import ConfigError

SUFFIX = ".pse"


def register(subparsers: argparse._SubParsersAction) -> None:
    encrypt = subparsers.add_parser("encrypt", help="envelope-encrypt a file (fresh data key per file)")
    encrypt.add_argument("src", type=Path)
    encrypt.add_argument("-o", "--output", type=Path, help=f"destination (default: SRC{SUFFIX})")
    encrypt.add_argument("--key", help="wrapping key name (default: PIPESHIELD_WRAPPING_KEY)")
    encrypt.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="plaintext bytes per chunk")
    _common_options(encrypt)
    encrypt.set_defaults(func=_encrypt)

    decrypt = subparsers.add_parser("decrypt", help="verify and decrypt an envelope (nothing is written on failure)")
    decrypt.add_argument("src", type=Path)
    decrypt.add_argument("-o", "--output", type=Path, help=f"destination (default: SRC without {SUFFIX})")
    decrypt.add_argument("--key", help="refuse envelopes wrapped under another key")
    _common_options(decrypt)
    decrypt.set_defaults(func=_decrypt)

    rewrap = subparsers.add_parser("rewrap", help="rewrap data keys under the latest key version (header only)")
    rewrap.add_argument("files", type=Path, nargs="+")
    rewrap.add_argument("--json", action="store_true", help="print one JSON object per file")
    rewrap.set_defaults(func=_rewrap)

    inspect = subparsers.add_parser("inspect", help="show an envelope's header (no key needed)")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_inspect)


def _common_options(parser: argparse.ArgumentParser) -> None:
    binding = parser.add_mutually_exclusive_group()
    binding.add_argument("--context", default="", help="text the envelope is bound to (e.g. run id + path)")
    binding.add_argument("--context-json", metavar="JSON", help="JSON object the envelope is bound to")
    parser.add_argument("--no-digests", action="store_true", help="skip the SHA-256 digests (faster)")
    parser.add_argument("--progress", action="store_true", help="show progress even when stderr is not a TTY")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _context(args: argparse.Namespace) -> Context:
    if args.context_json is None:
        return str(args.context)
    try:
        value = json.loads(args.context_json)
    except json.JSONDecodeError as exc:
        raise ConfigError("--context-json", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError("--context-json", "must be a JSON object")
    return value


def _progress(src: Path, label: str, force: bool) -> ProgressBar:
    return ProgressBar(os.path.getsize(src), f"{label} {src.name}", force=force)


def _report(result: EnvelopeResult, dst: Path, as_json: bool) -> None:
    info: dict[str, Any] = {"output": str(dst), **result.as_dict()}
    if as_json:
        print(json.dumps(info))
        return
    print(f"wrote {dst} ({result.plaintext_size} plaintext bytes, key {result.key_name} v{result.key_version})")
    if result.plaintext_sha256:
        print(f"plaintext  sha256 {result.plaintext_sha256}")
        print(f"ciphertext sha256 {result.ciphertext_sha256}")


def _encrypt(args: argparse.Namespace) -> int:
    dst = args.output or args.src.with_name(args.src.name + SUFFIX)
    key = args.key or settings_from(args).wrapping_key
    with provider_from(args) as provider, _progress(args.src, "encrypting", args.progress) as bar:
        result = encrypt_file(args.src, dst, provider, key_name=key, context=_context(args),
                              chunk_size=args.chunk_size, progress=bar, digests=not args.no_digests)
    _report(result, dst, args.json)
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    if args.output is None and args.src.suffix != SUFFIX:
        raise ConfigError("--output", f"required when the source does not end in {SUFFIX}")
    dst = args.output or args.src.with_suffix("")
    with provider_from(args) as provider, _progress(args.src, "decrypting", args.progress) as bar:
        result = decrypt_file(args.src, dst, provider, context=_context(args), key_name=args.key,
                              progress=bar, digests=not args.no_digests)
    _report(result, dst, args.json)
    return 0


def _rewrap(args: argparse.Namespace) -> int:
    with provider_from(args) as provider:
        for path in args.files:
            result = rewrap_file(path, provider)
            if args.json:
                print(json.dumps({"file": str(path), **vars(result)}))
            else:
                print(f"{path}: key {result.key_name} v{result.old_version} -> v{result.new_version}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    info = inspect_file(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for name, value in info.items():
            print(f"{name:<{width}}  {value}")
    return 0
