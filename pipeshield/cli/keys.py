"""``pipeshield keys``: create, rotate, list and inspect keys in the configured provider."""

from __future__ import annotations

import argparse
import json

from pipeshield.cli._common import provider_from
from pipeshield.keys import KeyInfo, KeyType


def register(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="manage wrapping and signing keys")
    commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = commands.add_parser("create", help="create a key (no-op if it exists with the same type)")
    create.add_argument("name")
    create.add_argument("--type", choices=[t.value for t in KeyType], default=KeyType.AES256_GCM96.value)
    create.add_argument("--derived", action="store_true", help="derive a key per context (AES keys only)")
    create.set_defaults(func=_create)

    rotate = commands.add_parser("rotate", help="add a new key version")
    rotate.add_argument("name")
    rotate.set_defaults(func=_rotate)

    retire = commands.add_parser("retire", help="refuse versions below N (min_decryption_version)")
    retire.add_argument("name")
    retire.add_argument("--below", type=int, required=True, metavar="N")
    retire.set_defaults(func=_retire)

    listing = commands.add_parser("list", help="list keys with their versions")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)

    public = commands.add_parser("public-key", help="print a signing key's public key (PEM)")
    public.add_argument("name")
    public.add_argument("--version", type=int, default=None)
    public.set_defaults(func=_public_key)


def _describe(info: KeyInfo) -> str:
    derived = ", derived" if info.derived else ""
    return (
        f"{info.name}: {info.type.value}{derived}, latest v{info.latest_version}, "
        f"min decryption v{info.min_decryption_version}"
    )


def _create(args: argparse.Namespace) -> int:
    with provider_from(args) as provider:
        print(_describe(provider.create_key(args.name, KeyType(args.type), derived=args.derived)))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    with provider_from(args) as provider:
        print(_describe(provider.rotate(args.name)))
    return 0


def _retire(args: argparse.Namespace) -> int:
    with provider_from(args) as provider:
        print(_describe(provider.set_min_decryption_version(args.name, args.below)))
    return 0


def _list(args: argparse.Namespace) -> int:
    with provider_from(args) as provider:
        infos = [provider.key_info(name) for name in provider.list_keys()]
    if args.json:
        print(json.dumps([
            {"name": i.name, "type": i.type.value, "derived": i.derived,
             "latest_version": i.latest_version, "min_decryption_version": i.min_decryption_version}
            for i in infos
        ], indent=2))
    else:
        for info in infos:
            print(_describe(info))
    return 0


def _public_key(args: argparse.Namespace) -> int:
    with provider_from(args) as provider:
        print(provider.public_key_pem(args.name, args.version), end="")
    return 0
