"""Secret hygiene: run the demo DAGs with every stage logging in to Vault with its own AppRole, then scan
everything the run left behind (task logs, Python logging, stdout/stderr, spans exported over OTLP, the
lineage ledger, raw XCom rows, MLflow params/tags and stores) and the texts of fault-case exceptions for
every secret in play: data keys, Vault tokens, AppRole secret-ids, the local master key and keyring key
material, and the raw values of tokenized columns."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sqlite3
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from pipeshield.config import Settings
from pipeshield.errors import PipeshieldError
from pipeshield.keys import LocalKeyProvider, VaultTransitKeyProvider, open_key_provider
from tests.fixtures.airflow_env import load_dagbag
from tests.fixtures.secret_scan import SecretScanner
from tests.fixtures.stages import SIGNING_KEY, Deployment

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = 60


class DataKeyCapture:
    """Records every data key a key provider class hands out or unwraps in this process (the scan's
    reference list only: the product code is not changed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, provider_class: type) -> None:
        self.keys: list[bytes] = []
        generate, unwrap = provider_class.generate_data_key, provider_class.unwrap

        def generate_data_key(provider, name, *, context=None):  # noqa: ANN001, ANN202
            data_key = generate(provider, name, context=context)
            self.keys.append(data_key.plaintext)
            return data_key

        def unwrap_key(provider, name, wrapped, *, context=None):  # noqa: ANN001, ANN202
            plaintext = unwrap(provider, name, wrapped, context=context)
            self.keys.append(plaintext)
            return plaintext

        monkeypatch.setattr(provider_class, "generate_data_key", generate_data_key)
        monkeypatch.setattr(provider_class, "unwrap", unwrap_key)


@pytest.fixture
def issued_tokens(vault_emulator, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Vault token the emulator issues from now on (logins of every stage included)."""
    issued: list[str] = []
    if vault_emulator is None:  # a real Vault: only the tokens the test itself holds are known
        return issued
    store = vault_emulator.core.tokens
    add = store._add  # noqa: SLF001 - test infrastructure

    def record(token) -> None:  # noqa: ANN001
        issued.append(token.id)
        add(token)

    monkeypatch.setattr(store, "_add", record)
    return issued


@pytest.fixture
def encrypted_xcom(monkeypatch: pytest.MonkeyPatch) -> None:
    """``[core] xcom_backend = pipeshield.plugins.xcom.EncryptedXComBackend`` for in-process ``dag.test()``
    runs (Airflow resolves the class once, at import, into these two modules)."""
    from airflow.sdk.execution_time import task_runner, xcom

    from pipeshield.plugins.xcom import EncryptedXComBackend

    monkeypatch.setattr(xcom, "XCom", EncryptedXComBackend)
    monkeypatch.setattr(task_runner, "XCom", EncryptedXComBackend)


@pytest.fixture
def hygiene_registry(stage_deployment: Deployment, mlflow_server_factory, tmp_path_factory):  # noqa: ANN001, ANN201
    """A signed mlflow server that trusts the deployment's Vault signing key (public half only)."""
    trusted = tmp_path_factory.mktemp("hygiene-trusted")
    admin = VaultTransitKeyProvider.from_settings(Settings.load({
        "PIPESHIELD_VAULT_ADDR": stage_deployment.vault.address, "PIPESHIELD_VAULT_TOKEN": stage_deployment.vault.root_token,
        "PIPESHIELD_VAULT_TRANSIT_MOUNT": stage_deployment.manifest.vault.transit_mount}))
    with admin:
        info = admin.key_info(SIGNING_KEY)
        for version in info.versions:
            (trusted / f"{SIGNING_KEY}.v{version}.pem").write_text(admin.public_key_pem(SIGNING_KEY, version))
    root = tmp_path_factory.mktemp("hygiene-mlflow")
    db = f"sqlite:///{root / 'mlflow.db'}"
    env = {"PIPESHIELD_HOME": str(root / "home"), "PIPESHIELD_TRUSTED_KEYS_DIR": str(trusted),
           "PIPESHIELD_SIGNING_KEY": SIGNING_KEY}
    server = mlflow_server_factory(backend_store_uri=db, registry_store_uri=f"signed+{db}", extra_env=env)
    return server, trusted


def _people(path: Path) -> list[str]:
    """A table with PII columns; returns the raw values that must never appear outside plaintext files."""
    emails = [f"person{i:03d}.{uuid.uuid4().hex[:6]}@corp.example" for i in range(PEOPLE)]
    ssns = [f"{100 + i:03d}-{uuid.uuid4().int % 90 + 10:02d}-{uuid.uuid4().int % 9000 + 1000:04d}" for i in range(PEOPLE)]
    pd.DataFrame({"id": range(PEOPLE), "email": emails, "ssn": ssns, "score": [i / 7 for i in range(PEOPLE)]}).to_csv(
        path, index=False)
    return emails + ssns


def _training_table(path: Path) -> None:
    """A small labelled table and the data gate's suite next to it."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.iloc[:, list(range(4)) + [-1]].to_csv(path, index=False)
    suite = {"name": "hygiene", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "mean_radius"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}}]}
    path.with_name("suite.json").write_text(json.dumps(suite))


def _mlflow_records(tracking_uri: str) -> Iterator[tuple[str, dict]]:
    """(where, params/tags) of every run, logged model, registered model and version on a server."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(experiments):
        yield f"run {run.info.run_id} params", run.data.params
        yield f"run {run.info.run_id} tags", run.data.tags
    for model in client.search_logged_models(experiments):
        yield f"logged model {model.model_id} params", model.params
        yield f"logged model {model.model_id} tags", model.tags
    for registered in client.search_registered_models():
        yield f"registered model {registered.name} tags", registered.tags
        for version in client.search_model_versions(f"name = '{registered.name}'"):
            yield f"model version {registered.name}/{version.version} tags", version.tags


def _sqlite_rows(path: Path) -> Iterator[tuple[str, tuple]]:
    with sqlite3.connect(path) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - table names from the schema
                yield table, row


@pytest.mark.slow
@pytest.mark.reliability("secret hygiene", "demo DAGs with per-stage Vault AppRoles: logs, spans, XComs, MLflow",
                         "no data key, Vault token, AppRole secret-id or raw tokenized value in any artefact")
def test_dag_runs_leave_no_secret_behind(
    stage_deployment: Deployment, hygiene_registry, mlflow_server, dags_folder: Path, encrypted_xcom, issued_tokens,
    otlp_receiver, tracing, secret_scan: SecretScanner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture, reliability,
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    server, trusted = hygiene_registry
    work = tmp_path / "work"
    (work / "landing").mkdir(parents=True)
    raw_values = _people(work / "people.csv")
    _training_table(work / "train.csv")
    shutil.copy(work / "train.csv", work / "landing" / "batch.csv")
    for name in ("secret_hygiene.py",):
        shutil.copy(ROOT / "tests" / "dags" / name, dags_folder / name)
    shutil.copy(ROOT / "dags" / "train_model.py", dags_folder / "train_model.py")

    # a worker serving every stage, each with its own AppRole; the demo DAG gets the gate by its tag
    for name, value in {**stage_deployment.environ(), "PIPESHIELD_STAGE": "train",
                        "PIPESHIELD_MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_URI": mlflow_server.url,
                        "PIPESHIELD_TRUSTED_KEYS_DIR": str(trusted), "PIPESHIELD_SIGNING_KEY": SIGNING_KEY,
                        "PIPESHIELD_GATE_TRAIN_TAGS": "training", "PIPESHIELD_GATE_LABEL_COLUMN": "label",
                        "PIPESHIELD_GATE_ON_FLAG": "warn", "ML_DATA_DIR": str(work),
                        "ML_MODEL_NAME": f"hygiene-{uuid.uuid4().hex[:8]}"}.items():
        monkeypatch.setenv(name, value)
    data_keys = DataKeyCapture(monkeypatch, VaultTransitKeyProvider)
    tracing.add(OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces"))
    caplog.set_level(logging.DEBUG)

    bag = load_dagbag(dags_folder)
    model_name = f"hygiene-{uuid.uuid4().hex[:8]}"
    conf = {"workdir": str(work), "model_name": model_name, "tracking_uri": server.url}
    hygiene = bag.dags["pipeshield_secret_hygiene"].test(run_conf=conf)
    assert hygiene.state == "success"
    assert "pipeshield_gate__train" in bag.dags["train_model"].task_dict
    assert bag.dags["train_model"].test().state == "success"
    captured = capfd.readouterr()

    # the run did what it should: plaintext round-trip, tokenized output, a signed and verified version
    assert (work / "dec" / "people.csv").read_bytes() == (work / "people.csv").read_bytes()
    assert (work / "verified" / model_name / "1" / "weights.json").exists()
    assert data_keys.keys
    assert issued_tokens or not stage_deployment.vault.is_emulator

    # the secrets in play
    secret_scan.add_all("data key", set(data_keys.keys))
    secret_scan.add_all("vault token", set(issued_tokens) | {stage_deployment.vault.root_token})
    secret_scan.add_all("approle secret-id", [p.read_text().strip() for p in stage_deployment.credentials.glob("*.secret-id")])
    secret_scan.add_all("raw tokenized value", raw_values)

    # where they must not be
    home = Path(os.environ["AIRFLOW_HOME"])
    if (home / "logs").exists():
        secret_scan.directory(home / "logs", kind="task log lines")
    secret_scan.text("python logging", "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records),
                     kind="log records", units=len(caplog.records))
    secret_scan.text("stdout+stderr", captured.out + captured.err, kind="stdout/stderr lines")
    spans = otlp_receiver.snapshot()
    assert any(s["name"].startswith("pipeshield.") for s in spans), sorted({s["name"] for s in spans})
    secret_scan.text("OTLP export (raw protobuf)", b"".join(otlp_receiver.raw), kind="spans exported", units=len(spans))
    ledger = Path(Settings.load().home) / "lineage.db"
    if ledger.exists():
        secret_scan.rows("lineage ledger", [row for _, row in _sqlite_rows(ledger)], kind="ledger rows")
    with sqlite3.connect(home / "airflow.db") as db:
        xcoms = db.execute("SELECT dag_id, task_id, key, value FROM xcom WHERE dag_id IN "
                           "('pipeshield_secret_hygiene', 'train_model')").fetchall()
    assert len(xcoms) >= 8
    stored = {task: value for dag, task, _, value in xcoms if dag == "pipeshield_secret_hygiene"}
    assert all("__pipeshield_envelope__" in str(value) for value in stored.values()), "XComs not encrypted"
    secret_scan.rows("airflow xcom table", xcoms, kind="XComs")
    for where, values in [*_mlflow_records(server.url), *_mlflow_records(mlflow_server.url)]:
        secret_scan.rows(where, values.items(), kind="MLflow params/tags")
    for store in (server, mlflow_server):
        secret_scan.rows(f"mlflow db {store.backend_store_uri}", [row for _, row in _sqlite_rows(
            Path(store.backend_store_uri.removeprefix("sqlite:///")))], kind="MLflow DB rows")
        secret_scan.directory(Path(store.artifacts_destination), kind="artifact lines")
        secret_scan.file(store.log, kind="server log lines")
    secret_scan.file(work / "tok" / "people.parquet", kind="tokenized tables", units=1)
    secret_scan.file(work / "enc" / "people.pse", kind="envelopes", units=1)
    secret_scan.directory(Path(Settings.load().home))  # gate reports, ledger, verified copies
    # positive control: the reference list does match where the plaintext legitimately is
    assert {h.label for h in secret_scan.find("decrypted", (work / "dec" / "people.csv").read_bytes())} == {
        "raw tokenized value"}

    reliability(observed=secret_scan.describe(), secrets_leaked=len(secret_scan.hits),
                artefacts_scanned=sum(secret_scan.counts.values()))
    assert secret_scan.hits == [], secret_scan.describe()


def _exception_text(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


@pytest.mark.reliability("secret hygiene", "exception texts of fault cases (wrong master key, wrong key, "
                         "tampered envelope, expired and revoked Vault tokens, wrong secret-id, denied path)",
                         "each fails with a PipeshieldError naming the cause; no secret in message, repr or traceback")
def test_fault_exceptions_carry_no_secret(vault, tmp_path: Path, master_key: bytes, secret_scan: SecretScanner,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                          reliability) -> None:
    from pipeshield.cli import main
    from pipeshield.envelope import decrypt_file, encrypt_file

    data_keys = DataKeyCapture(monkeypatch, LocalKeyProvider)
    other_master = bytes(reversed(master_key))
    (tmp_path / "plain.csv").write_text("id,email\n1,alice.secret@corp.example\n")
    errors: dict[str, BaseException] = {}

    def expect(case: str, call) -> None:  # noqa: ANN001
        with pytest.raises(PipeshieldError) as excinfo:
            call()
        errors[case] = excinfo.value

    with LocalKeyProvider(tmp_path / "keyring", master_key) as provider:
        provider.create_key("data")
        encrypt_file(tmp_path / "plain.csv", tmp_path / "plain.pse", provider, key_name="data", context="run-1")
        key_material = [base64.b64decode(v[field]) for v in provider._load("data")["versions"].values()  # noqa: SLF001
                        for field in ("key", "hmac_key")]
        expect("wrong binding", lambda: decrypt_file(tmp_path / "plain.pse", tmp_path / "out.csv", provider,
                                                     context="run-2"))
        blob = bytearray((tmp_path / "plain.pse").read_bytes())
        blob[-3] ^= 1
        (tmp_path / "tampered.pse").write_bytes(bytes(blob))
        expect("tampered envelope", lambda: decrypt_file(tmp_path / "tampered.pse", tmp_path / "out.csv", provider,
                                                         context="run-1"))
    expect("wrong master key", lambda: LocalKeyProvider(tmp_path / "keyring", other_master))
    with LocalKeyProvider(tmp_path / "other-keyring", other_master) as other:
        other.create_key("data")  # same name, other material
        expect("another keyring's key", lambda: decrypt_file(tmp_path / "plain.pse", tmp_path / "out.csv", other,
                                                             context="run-1"))
    monkeypatch.setenv("PIPESHIELD_KEYRING_DIR", str(tmp_path / "keyring"))
    monkeypatch.setenv("PIPESHIELD_MASTER_KEY", base64.b64encode(other_master).decode())
    cli_code = main(["decrypt", str(tmp_path / "plain.pse"), "-o", str(tmp_path / "cli.csv"), "--context", "run-1"])
    cli = capsys.readouterr()
    assert cli_code != 0 and not (tmp_path / "cli.csv").exists()

    # Vault: an expired token, a revoked one, a token without the path's policy, a wrong secret-id
    transit = vault.enable_transit("hygiene")
    vault.client().secrets.transit.create_key("data", mount_point=transit)
    policy = vault.write_policy("hygiene", f'path "{transit}/datakey/plaintext/data" {{ capabilities = ["update"] }}')
    short = vault.token([policy], ttl="1s", renewable=False)
    revoked = vault.token([policy], ttl="1h")
    vault.client().auth.token.revoke(revoked)
    denied = vault.token(["default"], ttl="1h")
    approle = vault.enable_approle()
    creds = vault.approle(approle, "hygiene", [policy])
    stolen = vault.approle(approle, "other", [policy]).secret_id  # a real secret-id, of another role

    def vault_provider(**env: str):  # noqa: ANN003, ANN202
        return open_key_provider(Settings.load({"PIPESHIELD_VAULT_ADDR": vault.address,
                                                "PIPESHIELD_VAULT_TRANSIT_MOUNT": transit, **env}))

    time.sleep(1.5)
    for case, token in (("expired Vault token", short), ("revoked Vault token", revoked),
                        ("Vault token without the policy", denied)):
        expect(case, lambda token=token: vault_provider(PIPESHIELD_VAULT_TOKEN=token).generate_data_key("data"))
    expect("AppRole with another role's secret-id", lambda: vault_provider(
        PIPESHIELD_VAULT_AUTH="approle", PIPESHIELD_VAULT_ROLE_ID=creds.role_id,
        PIPESHIELD_VAULT_SECRET_ID=stolen, PIPESHIELD_VAULT_AUTH_MOUNT=approle).generate_data_key("data"))

    secret_scan.add("local master key", master_key)
    secret_scan.add("other master key", other_master)
    secret_scan.add_all("keyring key material", key_material)
    secret_scan.add_all("data key", set(data_keys.keys))
    secret_scan.add_all("vault token", [short, revoked, denied, vault.root_token])
    secret_scan.add_all("approle secret-id", [creds.secret_id, stolen])
    secret_scan.add("raw value", "alice.secret@corp.example")
    assert data_keys.keys
    for case, exc in errors.items():
        secret_scan.text(case, _exception_text(exc), kind="exception texts", units=1)
    secret_scan.text("pipeshield decrypt (wrong master key) output", cli.out + cli.err, kind="exception texts", units=1)

    reliability(observed=f"{len(errors)} faults, each a {'/'.join(sorted({type(e).__name__ for e in errors.values()}))}; "
                         + secret_scan.describe(),
                secrets_leaked=len(secret_scan.hits), artefacts_scanned=sum(secret_scan.counts.values()))
    assert secret_scan.hits == [], secret_scan.describe()


def test_scanner_finds_every_encoding_and_never_prints_the_secret(secret_scan: SecretScanner) -> None:
    key = bytes(range(32))
    secret_scan.add("data key", key)
    secret_scan.add("vault token", "hvs.CAESIJ-example-token")
    blobs = {"b64": base64.b64encode(key), "hex": key.hex().upper().encode(), "raw": b"x" + key,
             "url": base64.urlsafe_b64encode(key).rstrip(b"="), "token": b'{"X-Vault-Token": "hvs.CAESIJ-example-token"}'}
    for where, blob in blobs.items():
        assert secret_scan.text(where, blob), where
    assert secret_scan.text("clean", "nothing to see " + key.hex()[:14]) == []
    assert "hvs.CAESIJ" not in secret_scan.describe() and key.hex() not in secret_scan.describe()
    with pytest.raises(ValueError, match="too short"):
        secret_scan.add("pin", "1234")
