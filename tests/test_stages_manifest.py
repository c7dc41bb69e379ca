"""Stage manifest: the shipped default, schema errors naming line and field, renderers."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import hcl
import pytest

from pipeshield.errors import ManifestError, UnknownStageError
from pipeshield.stages import (
    DEFAULT_STAGES,
    OPERATIONS,
    audit,
    helm_values,
    load_manifest,
    parse_manifest,
    policy_rules,
    render_vault,
)

GOOD = """\
version: 1
stages:
  train:
    auth:
      approle: {}
    transit:
      data: [datakey, decrypt]
  deploy:
    auth:
      kubernetes: {service_account: deployer}
    transit:
      signing: [verify]
"""


def _error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(textwrap.dedent(text), "m.yaml")
    return caught.value


def test_default_manifest_covers_the_five_stages_with_least_privilege() -> None:
    manifest = load_manifest()
    assert tuple(manifest.stages) == DEFAULT_STAGES
    train, register, deploy = manifest.stage("train"), manifest.stage("register"), manifest.stage("deploy")
    assert train.allows("datakey", "pipeshield-data") and train.allows("decrypt", "pipeshield-data")
    assert "sign" not in train.operations()
    assert register.allows("sign", "pipeshield-signing") and "decrypt" not in register.operations()
    assert deploy.allows("verify", "pipeshield-signing") and deploy.allows("decrypt", "pipeshield-models")
    assert not {"sign", "datakey"} & deploy.operations()
    assert manifest.stage("validate").operations() == {"decrypt"}
    assert manifest.stage("serve").operations() == {"verify", "read"}
    assert audit(manifest) == []


def test_unknown_stage_is_named() -> None:
    with pytest.raises(UnknownStageError, match="'trian'.*register, serve, train, validate"):
        load_manifest().stage("trian")


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        pytest.param(GOOD.replace("[datakey, decrypt]", "[datakey, sing]"), 7, "stages.train.transit.data[1]",
                     "unknown Transit operation 'sing'", id="unknown-operation"),
        pytest.param(GOOD.replace("    transit:\n      data", "    tranzit: {}\n    transit:\n      data"), 6,
                     "stages.train.tranzit", "unknown key 'tranzit'", id="unknown-key"),
        pytest.param(GOOD + "  train:\n    auth: {approle: {}}\n    transit: {data: [decrypt]}\n", 13,
                     "stages.train", "duplicate key 'train' (first defined on line 3)", id="duplicate-stage"),
        pytest.param(GOOD.replace("    transit:\n      signing: [verify]\n", "    mlflow: {registered_model: READ}\n"),
                     8, "stages.deploy", "empty policy", id="no-grants"),
        pytest.param(GOOD.replace("data: [datakey, decrypt]", "data: []"), 7, "stages.train.transit.data",
                     "must not be empty", id="empty-operation-list"),
        pytest.param(GOOD.replace("      signing: [verify]", "      {}").replace("transit:\n      {}", "transit: {}"),
                     11, "stages.deploy.transit", "must not be empty", id="empty-transit"),
        pytest.param(GOOD.replace("      approle: {}\n", ""), 4, "stages.train.auth", "expected object, got nothing",
                     id="no-auth"),
        pytest.param(GOOD.replace("      approle: {}\n", "      {}\n").replace("auth:\n      {}", "auth: {}"), 4,
                     "stages.train.auth", "must not be empty", id="empty-auth"),
        pytest.param(GOOD.replace("version: 1", "version: 2"), 1, "version", "must be 1", id="version"),
        pytest.param(GOOD.replace("  deploy:", "  Deploy!:"), 8, "stages.Deploy!", "invalid name", id="bad-stage-name"),
        pytest.param(GOOD.replace("    transit:\n      data", "    token_ttl: 2h\n    token_max_ttl: 1h\n"
                                  "    transit:\n      data"), 6, "stages.train.token_ttl", "longer than",
                     id="ttl-above-max"),
        pytest.param(GOOD.replace("approle: {}", "approle: {secret_id_ttl: soon}"), 5,
                     "stages.train.auth.approle.secret_id_ttl", "invalid duration", id="bad-duration"),
        pytest.param("version: 1\nstages:\n  a:\n    operators: [X]\n    auth: {approle: {}}\n    transit: {k: [read]}\n"
                     "  b:\n    operators: [Y, X]\n    auth: {approle: {}}\n    transit: {k: [read]}\n", 8,
                     "stages.b.operators[1]", "already claimed by stage 'a'", id="operator-in-two-stages"),
        pytest.param("version: 1\nstages: [train]\n", 2, "stages", "expected object", id="wrong-type"),
        pytest.param("version: 1\nstages:\n\ttrain: {}\n", 3, "", "not valid YAML", id="yaml"),
        pytest.param("version: 1\nx: &a [1, 1]\ny: [*a, *a, *a]\n", 3, "y[0]", "aliases are not supported",
                     id="billion-laughs"),
    ],
)
@pytest.mark.reliability("hostile input", "invalid stage manifest",
                         "ManifestError naming file, line and field")
def test_bad_manifest_names_line_and_field(text: str, line: int, field: str, problem: str) -> None:
    error = _error(text)
    assert (error.line, error.field) == (line, field), str(error)
    assert problem in str(error)
    assert str(error).startswith(f"m.yaml:{line}:")


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "nope.yaml")


def test_vault_policies_are_exact_paths_and_parse_as_hcl() -> None:
    manifest = load_manifest()
    files = render_vault(manifest)
    assert set(files) == ({f"policies/pipeshield-{s}.hcl" for s in DEFAULT_STAGES}
                          | {f"approle/pipeshield-{s}.json" for s in DEFAULT_STAGES}
                          | {f"kubernetes/pipeshield-{s}.json" for s in DEFAULT_STAGES})
    deploy = hcl.loads(files["policies/pipeshield-deploy.hcl"])["path"]
    assert deploy == {
        "transit/decrypt/pipeshield-models": {"capabilities": ["update"]},
        "transit/keys/pipeshield-signing": {"capabilities": ["read"]},
        "transit/verify/pipeshield-signing": {"capabilities": ["update"]},
    }
    role = json.loads(files["kubernetes/pipeshield-train.json"])
    assert role["bound_service_account_names"] == ["pipeshield-train"]
    assert role["bound_service_account_namespaces"] == ["airflow"]
    assert role["token_policies"] == ["pipeshield-train"] and role["token_ttl"] == 1800
    assert json.loads(files["approle/pipeshield-serve.json"])["token_max_ttl"] == 24 * 3600


def test_kv_and_raw_paths_render_to_kv_v2_capabilities() -> None:
    manifest = parse_manifest(GOOD.replace("      data: [datakey, decrypt]\n", "      data: [datakey, decrypt]\n"
                                           "    kv:\n      ml/train/config: [read, list]\n      ml/train/out: [write]\n"))
    rules = policy_rules(manifest.stage("train"), manifest.vault)
    assert rules["secret/data/ml/train/config"] == ["read"]
    assert rules["secret/metadata/ml/train/config"] == ["list"]
    assert rules["secret/data/ml/train/out"] == ["create", "update"]


def test_helm_values_shape() -> None:
    values = helm_values(parse_manifest(GOOD))
    assert list(values["stages"]) == ["deploy"]  # train has no Kubernetes auth
    deploy = values["stages"]["deploy"]
    assert deploy["serviceAccount"]["name"] == "deployer"
    assert deploy["serviceAccount"]["namespace"] == "airflow"
    assert deploy["vault"]["role"] == "pipeshield-deploy"
    assert deploy["vault"]["boundServiceAccountNames"] == ["deployer"]
    assert deploy["env"]["PIPESHIELD_STAGE_DEPLOY_AUTH"] == "kubernetes"
    assert deploy["queue"] == "deploy"


def test_every_operation_has_a_policy_path() -> None:
    manifest = parse_manifest(GOOD.replace("[datakey, decrypt]", "[" + ", ".join(OPERATIONS) + "]"))
    rules = policy_rules(manifest.stage("train"), manifest.vault)
    assert {path.split("/")[1] for path in rules} == {"datakey", "decrypt", "encrypt", "hmac", "sign", "verify",
                                                      "rewrap", "keys"}
