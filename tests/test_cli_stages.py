"""``pipeshield stages`` validate / render / apply."""

from __future__ import annotations

import json
from pathlib import Path

import hcl
import pytest
import yaml

from pipeshield.cli import main
from tests.fixtures.stages import manifest_text
from tests.fixtures.vault import VaultServer


def test_validate_lists_the_default_stages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "validate"]) == 0
    out = capsys.readouterr().out
    assert "valid, 5 stages" in out and "register" in out and "sign" in out


def test_validate_reports_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("version: 1\nstages:\n  train:\n    auth: {approle: {}}\n    transit: {k: [sing]}\n")
    assert main(["stages", "validate", "--manifest", str(bad)]) == 1
    assert f"{bad}:5: stages.train.transit.k[0]: unknown Transit operation 'sing'" in capsys.readouterr().err


def test_render_vault_to_stdout_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "render", "--vault"]) == 0
    out = capsys.readouterr().out
    assert "# ==> policies/pipeshield-train.hcl" in out and 'path "transit/sign/pipeshield-signing"' in out
    assert main(["stages", "render", "--vault", "--out", str(tmp_path / "vault")]) == 0
    policy = hcl.loads((tmp_path / "vault/policies/pipeshield-register.hcl").read_text())
    assert set(policy["path"]) == {"transit/sign/pipeshield-signing", "transit/keys/pipeshield-signing"}
    role = json.loads((tmp_path / "vault/kubernetes/pipeshield-deploy.json").read_text())
    assert role["bound_service_account_names"] == ["pipeshield-deploy"]


def test_render_k8s_helm_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "render", "--k8s"]) == 0
    values = yaml.safe_load(capsys.readouterr().out)
    assert sorted(values["stages"]) == ["deploy", "register", "serve", "train", "validate"]
    assert values["stages"]["serve"]["serviceAccount"]["name"] == "pipeshield-serve"
    assert main(["stages", "render", "--k8s", "--out", str(tmp_path / "values.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "values.yaml").read_text()) == values


def test_apply_enables_auth_writes_roles_and_issues_credentials(
        vault: VaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    layout = {"policy_prefix": vault.unique("cli") + "-", "transit_mount": "transit",
              "approle_mount": vault.unique("cli-approle"), "kubernetes_mount": vault.unique("cli-k8s")}
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(layout))
    monkeypatch.setenv("VAULT_ADDR", vault.address)
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    assert main(["stages", "apply", "--manifest", str(manifest), "--credentials-dir", str(tmp_path / "creds")]) == 0
    out = capsys.readouterr().out
    assert f"enabled auth method at {layout['approle_mount']}/" in out
    assert f"enabled auth method at {layout['kubernetes_mount']}/" in out
    client = vault.client()
    role_id = (tmp_path / "creds/train.role-id").read_text().strip()
    secret_id = (tmp_path / "creds/train.secret-id").read_text().strip()
    login = client.auth.approle.login(role_id, secret_id, use_token=False, mount_point=layout["approle_mount"])
    assert sorted(login["auth"]["policies"]) == sorted(["default", f"{layout['policy_prefix']}train"])
    assert secret_id not in out
    role = client.auth.kubernetes.read_role(f"{layout['policy_prefix']}deploy", mount_point=layout["kubernetes_mount"])
    assert role["bound_service_account_names"] == [f"{layout['policy_prefix']}deploy"]


def test_apply_needs_an_admin_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    assert main(["stages", "apply"]) == 1
    assert "VAULT_TOKEN" in capsys.readouterr().err
