"""``pipeshield stages``: validate, render, apply and audit the per-stage identity manifest."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import yaml

from pipeshield.cli._common import settings_from
from pipeshield.errors import ConfigError
from pipeshield.stages import StageManifest, audit, configured_manifest, helm_values, load_manifest, render_vault


def register(subparsers: argparse._SubParsersAction) -> None:
    stages = subparsers.add_parser("stages", help="per-stage least-privilege identity (Vault, Kubernetes, Airflow)")
    commands = stages.add_subparsers(dest="stages_command", metavar="ACTION", required=True)
    manifest_help = "stage manifest (default: $PIPESHIELD_STAGE_MANIFEST or the shipped default)"

    check = commands.add_parser("validate", help="validate a manifest and list its stages")
    check.add_argument("--manifest", type=Path, help=manifest_help)
    check.set_defaults(func=_validate)

    render = commands.add_parser("render", help="print (or write) Vault policies and roles, or Helm values")
    what = render.add_mutually_exclusive_group(required=True)
    what.add_argument("--vault", action="store_true", help="ACL policies (HCL) and AppRole/Kubernetes role definitions")
    what.add_argument("--k8s", action="store_true", help="ServiceAccounts and Vault role bindings as Helm values (YAML)")
    render.add_argument("--manifest", type=Path, help=manifest_help)
    render.add_argument("--out", type=Path, help="write files into this directory (--vault) or this file (--k8s)")
    render.set_defaults(func=_render)

    apply = commands.add_parser("apply", help="write the policies and roles to Vault (admin token from VAULT_TOKEN)")
    apply.add_argument("--manifest", type=Path, help=manifest_help)
    apply.add_argument("--credentials-dir", type=Path,
                       help="also issue each AppRole stage a secret-id: <dir>/<stage>.role-id and .secret-id (0600)")
    apply.set_defaults(func=_apply)

    check_dags = commands.add_parser("audit", help="audit a manifest against the tasks of a DAG folder (exit 1 on findings)")
    check_dags.add_argument("dags_folder", type=Path)
    check_dags.add_argument("--manifest", type=Path, help=manifest_help)
    check_dags.add_argument("--json", action="store_true", help="findings as JSON")
    check_dags.set_defaults(func=_audit)


def _manifest(args: argparse.Namespace) -> StageManifest:
    return load_manifest(args.manifest) if args.manifest else configured_manifest()


def _validate(args: argparse.Namespace) -> int:
    manifest = _manifest(args)
    print(f"{manifest.source}: valid, {len(manifest.stages)} stages")
    for stage in manifest.stages.values():
        grants = "; ".join(f"{key}: {', '.join(sorted(ops))}" for key, ops in sorted(stage.transit.items()))
        auth = ", ".join(a for a, v in (("approle", stage.approle), ("kubernetes", stage.kubernetes)) if v)
        print(f"  {stage.name:<10} auth {auth:<19} ttl {stage.token_ttl}s  transit {grants or '-'}")
    return 0


def _render(args: argparse.Namespace) -> int:
    manifest = _manifest(args)
    if args.k8s:
        text = yaml.safe_dump(helm_values(manifest), sort_keys=False)
        if args.out:
            _write_atomic(args.out, text)
            print(f"wrote {args.out}")
        else:
            print(text, end="")
        return 0
    files = render_vault(manifest)
    if args.out:
        for name, text in files.items():
            _write_atomic(args.out / name, text)
        print(f"wrote {len(files)} files under {args.out}")
    else:
        for name, text in files.items():
            print(f"# ==> {name}")
            print(text)
    return 0


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _apply(args: argparse.Namespace) -> int:
    import hvac

    from pipeshield.stages._apply import apply_manifest

    manifest = _manifest(args)
    settings = settings_from(args)
    if not settings.vault_addr or not settings.vault_token:
        raise ConfigError("VAULT_ADDR/VAULT_TOKEN", "stages apply needs a Vault address and an admin token")
    client = hvac.Client(url=settings.vault_addr, token=settings.vault_token, namespace=settings.vault_namespace,
                         verify=settings.vault_verify, timeout=settings.vault_timeout)
    result = apply_manifest(client, manifest, args.credentials_dir)
    for mount in result.enabled_auth:
        print(f"enabled auth method at {mount}/")
    print(f"policies: {', '.join(result.policies)}")
    print(f"AppRole roles: {', '.join(result.approle_roles) or '-'}")
    print(f"Kubernetes roles: {', '.join(result.kubernetes_roles) or '-'}")
    if result.credentials:
        print(f"credentials: {len(result.credentials)} files under {args.credentials_dir}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from pipeshield.plugins.stage_audit import collect_tasks  # Airflow stays out of the core

    manifest = _manifest(args)
    tasks, failures = collect_tasks(args.dags_folder, manifest)
    findings = failures + audit(manifest, tasks)
    if args.json:
        print(json.dumps([{"kind": f.kind, "subject": f.subject, "message": f.message, "line": f.line}
                          for f in findings], indent=2))
    else:
        print(f"audited {manifest.source} against {len(tasks)} tasks in {args.dags_folder}")
        for finding in findings:
            print(f"  {finding}")
        print(f"{len(findings)} finding(s)" if findings else "no findings")
    return 1 if findings else 0
