"""What a signature binds besides the files: registry name and version, MLflow ids, datasets, gate reports.

OMS (``model-signing``) signs file digests only; its subject name is the directory name and verifiers
ignore it. pipeshield writes these bindings to :data:`BINDINGS_FILE` inside the model directory, where
they are hashed and signed like every model file, so the stock verifier still accepts the bundle and
pipeshield's verifier can compare them with what the caller expects.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pipeshield.errors import SignatureFormatError

BINDINGS_FORMAT = "pipeshield-model-bindings-v1"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class ArtifactDigest:
    """An input the model depends on (a training dataset, a data-gate report): where it came from and its SHA-256."""

    uri: str
    sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.uri, str) or not self.uri:
            raise SignatureFormatError("an artifact binding needs a non-empty 'uri'")
        if not isinstance(self.sha256, str) or not _SHA256_HEX.match(self.sha256):
            raise SignatureFormatError(f"artifact {self.uri!r}: 'sha256' must be 64 lowercase hex digits")

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "sha256": self.sha256}


@dataclasses.dataclass(frozen=True)
class ModelBindings:
    """Facts the signature binds to the model files. Every field is optional for ``expected``.

    Signing requires ``name`` (the registered model name: without it a validly signed model of
    another name could be swapped in). The other fields are bound when given:

    - ``version``: the registry version number. The registry assigns it only when the version is
      created, so a caller that wants it bound signs with the *expected next* version and lets the
      registry refuse a mismatch (the ``signed+sqlite://`` store does); or leaves it unset and binds the
      version through the registry's immutable signature tags.
    - ``model_id``: MLflow 3 logged-model id (``m-...``); ``run_id``: the training run;
      ``source``: the artifact URI the files were taken from (``runs:/...``, ``models:/m-...``, a path).
    - ``datasets`` / ``gate_reports``: ``ArtifactDigest`` of every training dataset and data-gate report.

    When verifying, each field set in ``expected`` must equal the signed value (a signed value that is
    missing is a mismatch); ``datasets`` and ``gate_reports``, when non-empty in ``expected``, must equal
    the signed sets exactly. Fields left unset in ``expected`` are not checked.
    """

    name: str | None = None
    version: int | None = None
    model_id: str | None = None
    run_id: str | None = None
    source: str | None = None
    datasets: tuple[ArtifactDigest, ...] = ()
    gate_reports: tuple[ArtifactDigest, ...] = ()

    def __post_init__(self) -> None:
        for field in ("name", "model_id", "run_id", "source"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise SignatureFormatError(f"binding {field!r} must be a non-empty string")
        if self.version is not None and (isinstance(self.version, bool) or not isinstance(self.version, int)
                                         or self.version < 1):
            raise SignatureFormatError("binding 'version' must be a positive integer")
        object.__setattr__(self, "datasets", _artifacts(self.datasets, "datasets"))
        object.__setattr__(self, "gate_reports", _artifacts(self.gate_reports, "gate_reports"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written into :data:`BINDINGS_FILE`."""
        return {
            "name": self.name,
            "version": self.version,
            "model_id": self.model_id,
            "run_id": self.run_id,
            "source": self.source,
            "datasets": [a.to_dict() for a in self.datasets],
            "gate_reports": [a.to_dict() for a in self.gate_reports],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelBindings:
        """Inverse of :meth:`to_dict`; raises ``SignatureFormatError`` on a malformed document."""
        if not isinstance(data, Mapping):
            raise SignatureFormatError("bindings must be a JSON object")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SignatureFormatError(f"unknown binding fields: {', '.join(sorted(unknown))}")
        try:
            return cls(
                name=data.get("name"),
                version=data.get("version"),
                model_id=data.get("model_id"),
                run_id=data.get("run_id"),
                source=data.get("source"),
                datasets=tuple(ArtifactDigest(**a) for a in data.get("datasets") or ()),
                gate_reports=tuple(ArtifactDigest(**a) for a in data.get("gate_reports") or ()),
            )
        except TypeError as exc:
            raise SignatureFormatError(f"malformed artifact binding: {exc}") from None

    def mismatches(self, signed: ModelBindings) -> list[str]:
        """Names of the bindings set here that differ in ``signed`` (empty when ``signed`` satisfies ``self``)."""
        problems = []
        for field in ("name", "version", "model_id", "run_id", "source"):
            want = getattr(self, field)
            if want is not None and getattr(signed, field) != want:
                problems.append(field)
        for field in ("datasets", "gate_reports"):
            want = getattr(self, field)
            if want and set(getattr(signed, field)) != set(want):
                problems.append(field)
        return problems


def _artifacts(items: Iterable[ArtifactDigest | Mapping[str, str]], field: str) -> tuple[ArtifactDigest, ...]:
    out = []
    for item in items or ():
        if isinstance(item, ArtifactDigest):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(ArtifactDigest(uri=item.get("uri"), sha256=item.get("sha256")))  # type: ignore[arg-type]
        else:
            raise SignatureFormatError(f"binding {field!r}: expected {{uri, sha256}} entries")
    return tuple(sorted(out, key=lambda a: (a.uri, a.sha256)))


def bindings_document(bindings: ModelBindings, content_digest: str, bom_file: str) -> bytes:
    """The bytes of :data:`BINDINGS_FILE`: format marker, bindings, and the digest of the model files proper."""
    doc = {"format": BINDINGS_FORMAT, "bindings": bindings.to_dict(), "content_digest": content_digest,
           "bom": bom_file}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def parse_bindings_document(raw: bytes) -> tuple[ModelBindings, str]:
    """(bindings, content digest) from :data:`BINDINGS_FILE` bytes."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureFormatError(f"bindings file is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != BINDINGS_FORMAT:
        raise SignatureFormatError(f"bindings file is not in format {BINDINGS_FORMAT!r}")
    digest = doc.get("content_digest")
    if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
        raise SignatureFormatError("bindings file has no valid 'content_digest'")
    return ModelBindings.from_dict(doc.get("bindings") or {}), digest
