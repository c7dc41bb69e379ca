"""The Helm chart: lint clean, renders, every manifest validates against a pinned Kubernetes version,
secure defaults, one ServiceAccount and Vault role per stage, worker egress limited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

CHART = Path(__file__).resolve().parent.parent / "helm" / "pipeshield"
KUBERNETES_VERSION = "1.33.0"


def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    rendered = chart.render(values, name="ps", namespace="ml")
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def _kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def test_lint_is_clean() -> None:
    report = helm.lint(CHART, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["errors"] == [] and report["messages"] == []


def test_every_manifest_validates_against_kubernetes_schema() -> None:
    manifests = _render()
    assert len(manifests) >= 12
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_each_stage_has_its_own_service_account_and_vault_role() -> None:
    manifests = _render()
    accounts = {m["metadata"]["labels"]["pipeshield.io/stage"]: m for m in _kind(manifests, "ServiceAccount")
                if "pipeshield.io/stage" in m["metadata"]["labels"]}
    assert set(accounts) == {"validate", "train", "register", "deploy", "serve"}
    assert len({a["metadata"]["name"] for a in accounts.values()}) == len(accounts)
    roles = next(m for m in _kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("vault-roles"))
    for stage, account in accounts.items():
        role = json.loads(roles["data"][f"pipeshield-{stage}.json"])
        assert role["bound_service_account_names"] == [account["metadata"]["name"]]
        assert role["bound_service_account_namespaces"] == [account["metadata"]["namespace"]]
        assert role["token_policies"] == [f"pipeshield-{stage}"]
    env = {m["data"]["PIPESHIELD_STAGE"]: m["data"] for m in _kind(manifests, "ConfigMap") if "PIPESHIELD_STAGE" in m.get("data", {})}
    assert env["train"]["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARG__KUBERNETES_ROLE"] == "pipeshield-train"
    assert env["deploy"]["PIPESHIELD_STAGE_DEPLOY_ROLE"] == "pipeshield-deploy"


def test_values_rendered_from_a_stage_manifest_drive_the_chart(tmp_path: Path) -> None:
    """`pipeshield stages render --k8s` output is valid chart values, custom stages included."""
    from pipeshield.cli import main

    manifest = tmp_path / "stages.yaml"
    default = (Path(__file__).resolve().parent.parent / "pipeshield" / "stages" / "default-manifest.yaml").read_text()
    manifest.write_text(default.replace("stages:\n", "stages:\n  feature-eng:\n    auth: {kubernetes: {}}\n"
                                        "    transit: {pipeshield-data: [decrypt]}\n", 1))
    out = tmp_path / "values.yaml"
    assert main(["stages", "render", "--k8s", "--manifest", str(manifest), "--out", str(out)]) == 0
    values = yaml.safe_load(out.read_text())
    helm.Chart.load(CHART).validate_schema(values)
    names = {m["metadata"]["name"] for m in _kind(_render(values), "ServiceAccount")}
    assert "pipeshield-feature-eng" in names and "pipeshield-train" in names


def test_no_container_runs_as_root_by_default() -> None:
    pods = [m["spec"]["template"]["spec"] for m in _kind(_render(), "Deployment")]
    assert pods
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]


def test_workers_may_reach_only_vault_mlflow_db_collector_and_dns() -> None:
    policy = next(m for m in _kind(_render(), "NetworkPolicy") if m["metadata"]["name"].endswith("workers-egress"))
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"tier": "airflow", "component": "worker"}
    ports = sorted((rule["ports"][0]["port"]) for rule in policy["spec"]["egress"])
    assert ports == [53, 4318, 5000, 5432, 8200]
    for rule in policy["spec"]["egress"]:
        assert rule["to"], "every egress rule names its destination"


def test_mlflow_uses_the_signed_registry_store() -> None:
    deployment = next(m for m in _kind(_render(), "Deployment") if m["metadata"]["name"].endswith("mlflow"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--registry-store-uri" in container["args"][0]
    secret_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert "registry-store-uri" in secret_keys


@pytest.mark.parametrize(
    "values",
    [
        {"podSecurityContext": {"runAsNonRoot": False, "runAsUser": 0}},
        {"containerSecurityContext": {"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}},
        {"stages": {"Train": {}}},
        {"stages": {"train": {"queue": "train", "env": {"PIPESHIELD_STAGE": "train"},
                              "serviceAccount": {"create": True, "name": "sa"},
                              "vault": {"authMount": "kubernetes", "role": "r", "policies": ["root"],
                                        "boundServiceAccountNames": ["sa"], "boundServiceAccountNamespaces": ["ml"]}}}},
        {"stages": {"train": {"queue": "train", "env": {"PIPESHIELD_STAGE": "train"},
                              "serviceAccount": {"create": True, "name": "sa"},
                              "vault": {"authMount": "kubernetes", "role": "r", "policies": ["p"],
                                        "boundServiceAccountNames": ["*"], "boundServiceAccountNamespaces": ["ml"]}}}},
        {"vault": {"address": "vault:8200", "namespaceSelector": {"a": "b"}, "port": 8200}},
        {"unknownKey": 1},
    ],
)
def test_schema_refuses_insecure_or_malformed_values(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        helm.Chart.load(CHART).validate_schema(values)


def test_airflow_overlay_points_at_the_rendered_configmap() -> None:
    overlay = yaml.safe_load((CHART.parent / "airflow-values.yaml").read_text())
    configmaps = {m["metadata"]["name"] for m in _kind(_render(), "ConfigMap")}
    referenced = yaml.safe_load(overlay["extraEnvFrom"])[0]["configMapRef"]["name"]
    assert referenced.replace("pipeshield-pipeshield", "ps-pipeshield") in configmaps
    assert overlay["securityContexts"]["pod"]["runAsNonRoot"] is True
