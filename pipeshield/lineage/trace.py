"""``pipeshield trace``: walk prediction → model version → signature → training run → datasets → gate
reports → source, checking every hop that can be checked.

Each hop is ``verified`` (every available check passed and at least one was made), ``unverifiable``
(nothing could be checked; the detail says why) or ``mismatched`` (a check failed). Only MLflow and
the lineage ledger are needed.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeshield._progress import ProgressBar
from pipeshield.datasets import sha256_file
from pipeshield.lineage import attributes as A
from pipeshield.lineage.context import span_context_of
from pipeshield.lineage.datasets import local_path_of
from pipeshield.lineage.errors import LineageError, ModelVerificationError, VerifierUnavailableError
from pipeshield.lineage.ledger import Ledger, LedgerSpan
from pipeshield.lineage.verify import ModelVerifier, VerifiedModel, default_verifier


class Status(str, enum.Enum):
    VERIFIED = "verified"
    UNVERIFIABLE = "unverifiable"
    MISMATCHED = "mismatched"


@dataclasses.dataclass
class Hop:
    """One step of the lineage walk."""

    kind: str
    label: str
    status: Status
    detail: str = ""
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    children: list[Hop] = dataclasses.field(default_factory=list)

    def walk(self) -> Iterator[Hop]:
        yield self
        for child in self.children:
            yield from child.walk()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "status": self.status.value, "detail": self.detail,
                "facts": self.facts, "children": [c.to_dict() for c in self.children]}


@dataclasses.dataclass
class TraceResult:
    """The walked tree; ``mismatched`` is true when any hop failed a check."""

    root: Hop

    @property
    def mismatched(self) -> bool:
        return any(h.status is Status.MISMATCHED for h in self.root.walk())

    @property
    def fully_verified(self) -> bool:
        return all(h.status is Status.VERIFIED for h in self.root.walk())

    def hops(self, kind: str) -> list[Hop]:
        return [h for h in self.root.walk() if h.kind == kind]

    def to_json(self) -> str:
        return json.dumps({"mismatched": self.mismatched, "fully_verified": self.fully_verified,
                           "tree": self.root.to_dict()}, indent=2, sort_keys=True)

    def render(self) -> str:
        lines: list[str] = []

        def emit(hop: Hop, prefix: str, last: bool, top: bool) -> None:
            branch = "" if top else ("└─ " if last else "├─ ")
            line = f"{prefix}{branch}{hop.kind}: {hop.label} [{hop.status.value}]"
            lines.append(line + (f" {hop.detail}" if hop.detail else ""))
            inner = prefix + ("" if top else ("   " if last else "│  "))
            for key, value in hop.facts.items():
                lines.append(f"{inner}{'│  ' if hop.children else '   '}{key}: {value}")
            for index, child in enumerate(hop.children):
                emit(child, inner, index == len(hop.children) - 1, False)

        emit(self.root, "", True, True)
        return "\n".join(lines)


def _status(checks: list[bool], reason_if_none: str, failure: str) -> tuple[Status, str]:
    if any(not ok for ok in checks):
        return Status.MISMATCHED, failure
    if not checks:
        return Status.UNVERIFIABLE, reason_if_none
    return Status.VERIFIED, ""


def _rehash(path: Path) -> str:
    with ProgressBar(path.stat().st_size, f"sha256 {path.name}") as bar:
        return sha256_file(path, bar)


class Tracer:
    """Walks lineage with one MLflow client, one ledger and (optionally) a model verifier."""

    def __init__(self, *, tracking_uri: str | None, ledger: Ledger, verifier: ModelVerifier | None = None,
                 rehash: bool = True) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.ledger = ledger
        self.verifier = verifier if verifier is not None else default_verifier()
        self.rehash = rehash

    # -- entry point ---------------------------------------------------------------------------
    def trace(self, ref: str) -> TraceResult:
        """Trace a prediction id, ``models:/name/version`` or ``sha256:<hex>`` (model or dataset)."""
        if ref.startswith("models:/"):
            from pipeshield.serving._model import parse_model_uri

            return TraceResult(self._model_version(*parse_model_uri(ref, self.tracking_uri), prediction=None))
        if ref.startswith("sha256:"):
            return TraceResult(self._by_digest(ref.split(":", 1)[1].strip().lower()))
        span = self.ledger.prediction(ref)
        if span is None:
            raise LineageError(f"prediction {ref!r} is not in the lineage ledger ({self.ledger.url_display})")
        return TraceResult(self._prediction(span))

    # -- hops ----------------------------------------------------------------------------------
    def _prediction(self, span: LedgerSpan) -> Hop:
        attrs = span.attributes
        name, version = attrs.get(A.MODEL_NAME), attrs.get(A.MODEL_VERSION)
        if not name or version is None:
            return Hop("prediction", attrs.get(A.PREDICTION_ID, "?"), Status.MISMATCHED,
                       "ledger record names no model version")
        return self._model_version(str(name), str(version), prediction=span)

    def _model_version(self, name: str, version: str, prediction: LedgerSpan | None) -> Hop:
        from mlflow.exceptions import MlflowException

        try:
            model_version = self.client.get_model_version(name, version)
        except MlflowException as exc:
            hop = Hop("model_version", f"models:/{name}/{version}", Status.MISMATCHED,
                      f"not in the registry: {exc.error_code}")
            return self._wrap_prediction(prediction, hop, None)
        dest = Path(tempfile.mkdtemp(prefix="pipeshield-trace-"))
        try:
            signature, verified = self._signature(name, version, dest)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        source = model_version.source or ""
        model_id = model_version.model_id or (source.split("/", 1)[1] if source.startswith("models:/") else None)
        checks = [] if verified is None else [verified.name == name and verified.version == str(version)]
        status, detail = _status(checks, "signature could not be verified", "signature is bound to another name/version")
        if signature.status is Status.MISMATCHED:
            status, detail = Status.MISMATCHED, "signature check failed"
        hop = Hop("model_version", f"models:/{name}/{version}", status, detail,
                  {"run_id": model_version.run_id, "model_id": model_id, "source": source})
        hop.children.append(signature)
        if model_version.run_id:
            hop.children.append(self._run(model_version.run_id, verified))
        else:
            hop.children.append(Hop("training_run", "?", Status.UNVERIFIABLE, "model version names no run"))
        return self._wrap_prediction(prediction, hop, verified)

    def _wrap_prediction(self, prediction: LedgerSpan | None, model_hop: Hop, verified: VerifiedModel | None) -> Hop:
        if prediction is None:
            return model_hop
        attrs = prediction.attributes
        recorded = attrs.get(A.MODEL_DIGEST)
        checks = [] if verified is None or not verified.verified else [recorded == verified.manifest_digest]
        status, detail = _status(
            checks, "the served model's digest cannot be checked without a verified signature",
            f"served model digest {recorded} differs from the signed manifest"
            f" {verified.manifest_digest if verified else ''}",
        )
        facts = {"model": f"{attrs.get(A.MODEL_NAME)} v{attrs.get(A.MODEL_VERSION)}", "model_digest": recorded,
                 "input_sha256": attrs.get(A.INPUT_SHA256), "trace_id": prediction.trace_id,
                 "linked_training_span": ", ".join(l["trace_id"] + "/" + l["span_id"] for l in prediction.links) or None}
        return Hop("prediction", str(attrs.get(A.PREDICTION_ID)), status, detail,
                   {k: v for k, v in facts.items() if v is not None}, [model_hop])

    def _signature(self, name: str, version: str, dest: Path) -> tuple[Hop, VerifiedModel | None]:
        if self.verifier is None:
            return Hop("signature", f"models:/{name}/{version}", Status.UNVERIFIABLE,
                       "no model verifier installed (pipeshield.signing is not available)"), None
        try:
            verified = self.verifier(name, version, tracking_uri=self.tracking_uri, dest=dest)
        except VerifierUnavailableError as exc:
            return Hop("signature", f"models:/{name}/{version}", Status.UNVERIFIABLE, str(exc)), None
        except ModelVerificationError as exc:
            return Hop("signature", f"models:/{name}/{version}", Status.MISMATCHED, str(exc)), None
        if not verified.verified:
            return Hop("signature", f"models:/{name}/{version}", Status.UNVERIFIABLE, "model is not signed",
                       {"files_sha256": verified.manifest_digest}), verified
        facts = {"manifest_digest": verified.manifest_digest, "signature_digest": verified.signature_digest}
        return Hop("signature", f"models:/{name}/{version}", Status.VERIFIED, "",
                   {k: v for k, v in facts.items() if v}), verified

    def _run(self, run_id: str, verified: VerifiedModel | None) -> Hop:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            return Hop("training_run", run_id, Status.MISMATCHED, f"run not found: {exc.error_code}")
        signed = verified is not None and verified.verified
        checks = [verified.run_id == run_id] if signed and verified.run_id else []
        status, detail = _status(checks, "run id is not covered by a verified signature",
                                 f"signature binds run {verified.run_id if verified else ''}, not this one")
        tags = run.data.tags
        hop = Hop("training_run", run_id, status, detail, {
            k: v for k, v in {
                "experiment_id": run.info.experiment_id,
                "dag": tags.get(A.AIRFLOW_DAG_ID), "task": tags.get(A.AIRFLOW_TASK_ID),
                "airflow_run": tags.get(A.AIRFLOW_RUN_ID), "traceparent": tags.get(A.TAG_TRACEPARENT),
            }.items() if v
        })
        datasets = self._datasets(run, verified if signed else None)
        hop.children.extend(datasets)
        hop.children.extend(self._gate_reports(run, verified if signed else None))
        hop.children.append(self._source(run, datasets))
        return hop

    def _datasets(self, run: Any, verified: VerifiedModel | None) -> list[Hop]:
        hops: list[Hop] = []
        bound = {d.sha256: d for d in verified.datasets} if verified else {}
        seen: set[str] = set()
        for dataset_input in run.inputs.dataset_inputs:
            tags = {t.key: t.value for t in dataset_input.tags}
            recorded = tags.get(A.DATASET_SHA256)
            uri = tags.get(A.DATASET_URI) or _source_uri(dataset_input.dataset)
            if recorded:
                seen.add(recorded)
            hops.append(self._dataset_hop(uri, recorded, tags, bound if verified and verified.datasets else None))
        for sha, binding in bound.items():
            if sha not in seen:
                hops.append(self._dataset_hop(binding.uri, sha, {}, bound))
        if not hops:
            hops.append(Hop("dataset", "?", Status.UNVERIFIABLE, "the run logged no dataset input"))
        return hops

    def _dataset_hop(self, uri: str, recorded: str | None, tags: dict[str, str],
                     bound: dict[str, Any] | None) -> Hop:
        facts: dict[str, Any] = {"uri": uri, "sha256": recorded}
        if tags.get(A.DATASET_TABLE_DIGEST):
            facts["table_digest"] = tags[A.DATASET_TABLE_DIGEST]
        if tags.get(A.DATASET_ROWS):
            facts["rows"] = tags[A.DATASET_ROWS]
        if not recorded:
            return Hop("dataset", uri, Status.UNVERIFIABLE, "no pipeshield SHA-256 recorded (MLflow digest only)", facts)
        checks: list[bool] = []
        problems: list[str] = []
        reasons: list[str] = []
        if bound is not None:
            ok = recorded in bound
            checks.append(ok)
            facts["signed"] = ok
            if not ok:
                problems.append("recorded SHA-256 is not covered by the model signature")
        else:
            reasons.append("not bound by a verified signature")
        path = local_path_of(uri) if self.rehash else None
        if path is not None and path.is_file():
            now = _rehash(path)
            facts["rehashed"] = now
            checks.append(now == recorded)
            if now != recorded:
                problems.append(f"file changed since training: SHA-256 is now {now}")
        else:
            reasons.append("not reachable for re-hashing" if self.rehash else "re-hashing skipped")
        status, detail = _status(checks, "; ".join(reasons), "; ".join(problems))
        return Hop("dataset", uri, status, detail, facts)

    def _gate_reports(self, run: Any, verified: VerifiedModel | None) -> list[Hop]:
        tags = run.data.tags
        reports: dict[str, dict[str, Any]] = {}
        if tags.get(A.GATE_REPORT_SHA256):
            reports[tags[A.GATE_REPORT_SHA256]] = {"verdict": tags.get(A.GATE_VERDICT), "uri": tags.get(A.GATE_REPORT_URI)}
        for binding in verified.gate_reports if verified else ():
            entry = reports.setdefault(binding.sha256, {"verdict": binding.verdict, "uri": binding.uri})
            entry["signed"] = True
        if not reports:
            return [Hop("gate_report", "?", Status.UNVERIFIABLE, "no data-gate report recorded for this run")]
        hops = []
        for sha, info in reports.items():
            checks: list[bool] = []
            problems: list[str] = []
            if verified is not None and verified.gate_reports:
                checks.append(bool(info.get("signed")))
                if not info.get("signed"):
                    problems.append("report is not covered by the model signature")
            path = self._report_path(run.info.run_id, info.get("uri"))
            facts = {"sha256": sha, "verdict": info.get("verdict"), "uri": info.get("uri")}
            if path is not None:
                now = _rehash(path)
                checks.append(now == sha)
                if now != sha:
                    problems.append(f"report changed: SHA-256 is now {now}")
            verdict_ok = (info.get("verdict") or "").lower() not in ("fail", "failed", "rejected")
            checks.append(verdict_ok)
            if not verdict_ok:
                problems.append(f"gate verdict was {info.get('verdict')}")
            status, detail = _status(checks, "report not reachable and not signed", "; ".join(problems))
            hops.append(Hop("gate_report", info.get("uri") or sha, status, detail,
                            {k: v for k, v in facts.items() if v}))
        return hops

    def _report_path(self, run_id: str, uri: str | None) -> Path | None:
        if not uri or not self.rehash:
            return None
        if uri.startswith("runs:/") or uri.startswith("artifact:"):
            relative = uri.split("/", 2)[2] if uri.startswith("runs:/") else uri.split(":", 1)[1]
            try:
                return Path(self.client.download_artifacts(run_id, relative, tempfile.mkdtemp(prefix="pipeshield-gate-")))
            except Exception:  # noqa: BLE001 - unreachable means unverifiable, not an error
                return None
        path = local_path_of(uri)
        return path if path is not None and path.is_file() else None

    def _source(self, run: Any, datasets: list[Hop]) -> Hop:
        tags = run.data.tags
        label = "/".join(x for x in (tags.get(A.AIRFLOW_DAG_ID), tags.get(A.AIRFLOW_TASK_ID)) if x)
        span_context = span_context_of(tags.get(A.TAG_TRACEPARENT))
        if span_context is None:
            return Hop("source", label or "unknown", Status.UNVERIFIABLE, "the run carries no traceparent")
        trace_id = f"{span_context.trace_id:032x}"
        label = label or f"trace {trace_id}"
        spans = self.ledger.trace(trace_id)
        facts: dict[str, Any] = {"trace_id": trace_id, "airflow_run": tags.get(A.AIRFLOW_RUN_ID),
                                 "ledger_spans": len(spans)}
        if not spans:
            return Hop("source", label, Status.UNVERIFIABLE, "no ledger record of the producing trace",
                       {k: v for k, v in facts.items() if v is not None})
        recorded = {h.facts.get("sha256") for h in datasets if h.facts.get("sha256")}
        in_ledger = _dataset_digests(spans)
        facts["producing_spans"] = ", ".join(sorted({s.name for s in spans}))
        checks = [recorded <= in_ledger] if recorded else []
        status, detail = _status(checks, "the run recorded no dataset SHA-256 to compare",
                                 "the producing trace recorded different dataset SHA-256s than the run")
        return Hop("source", label, status, detail, {k: v for k, v in facts.items() if v is not None})

    def _by_digest(self, digest: str) -> Hop:
        by_model = [s for s in self.ledger.by_model_digest(digest) if s.attributes.get(A.MODEL_NAME)]
        if by_model:
            attrs = by_model[-1].attributes
            return self._model_version(str(attrs[A.MODEL_NAME]), str(attrs[A.MODEL_VERSION]), prediction=None)
        run_ids = {str(s.attributes[A.MLFLOW_RUN_ID]) for s in self.ledger.by_dataset_sha256(digest)
                   if s.attributes.get(A.MLFLOW_RUN_ID)}
        if not run_ids:
            raise LineageError(f"sha256:{digest} names no model or dataset in the lineage ledger")
        root = Hop("dataset_digest", f"sha256:{digest}", Status.VERIFIED, "models trained on this dataset")
        for run_id in sorted(run_ids):
            versions = self.client.search_model_versions(f"run_id = '{run_id}'")
            for mv in versions:
                root.children.append(self._model_version(mv.name, str(mv.version), prediction=None))
        if not root.children:
            root.status, root.detail = Status.UNVERIFIABLE, "no registered model version was trained on it"
        return root


def _source_uri(dataset: Any) -> str:
    try:
        source = json.loads(dataset.source)
    except (TypeError, ValueError):
        return str(dataset.source)
    return str(source.get("uri") or source.get("url") or source.get("path") or dataset.source)


def _dataset_digests(spans: list[LedgerSpan]) -> set[str]:
    found: set[str] = set()
    for span in spans:
        if span.attributes.get(A.DATASET_SHA256):
            found.add(str(span.attributes[A.DATASET_SHA256]))
        for event in span.events:
            if event["attributes"].get(A.DATASET_SHA256):
                found.add(str(event["attributes"][A.DATASET_SHA256]))
    return found


def trace_lineage(ref: str, *, tracking_uri: str | None, ledger: Ledger, verifier: ModelVerifier | None = None,
                  rehash: bool = True) -> TraceResult:
    """Walk the lineage of ``ref``; see :class:`Tracer`."""
    return Tracer(tracking_uri=tracking_uri, ledger=ledger, verifier=verifier, rehash=rehash).trace(ref)
