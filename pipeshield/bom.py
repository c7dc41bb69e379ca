"""ML-BOM: a CycloneDX 1.6 JSON document per signed model version.

The model is the BOM's ``metadata.component`` (type ``machine-learning-model``) whose SHA-256 is the
model's content digest (the OMS root digest over the model's own files); training datasets and
data-gate reports are ``data`` components with their SHA-256 and source; the Python dependencies come
from the model's ``requirements.txt``. ``sign_model`` writes the BOM into the model directory before
signing, so the signature covers it. Every BOM is checked with cyclonedx-python-lib's strict validator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.requirements import InvalidRequirement, Requirement

from pipeshield import __version__
from pipeshield.errors import SignatureFormatError

if TYPE_CHECKING:  # pipeshield.signing imports this module
    from pipeshield.signing import ArtifactDigest, ModelBindings

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")


def build_bom(bindings: ModelBindings, content_digest: str, requirements: str | None = None) -> bytes:
    """The validated CycloneDX 1.6 JSON bytes for a model about to be signed."""
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=bindings.name or "model",
        version=str(bindings.version) if bindings.version is not None else None,
        bom_ref="model",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=content_digest)],
        properties=[Property(name=f"pipeshield:{key}", value=str(value)) for key, value in (
            ("model_id", bindings.model_id), ("run_id", bindings.run_id), ("source", bindings.source),
            ("content_digest", content_digest)) if value is not None],
    )
    bom = Bom()
    bom.metadata.component = model
    bom.metadata.properties.add(Property(name="pipeshield:version", value=__version__))
    inputs = [_data_component(a, "dataset", i) for i, a in enumerate(bindings.datasets)]
    inputs += [_data_component(a, "gate-report", i) for i, a in enumerate(bindings.gate_reports)]
    libraries = list(_libraries(requirements or ""))
    for component in inputs + libraries:
        bom.components.add(component)
    bom.register_dependency(model, inputs + libraries)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    _add_model_card(doc, [c.bom_ref.value for c in inputs if c.bom_ref.value.startswith("dataset-")])
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    validate_bom(text)
    return text.encode()


def validate_bom(text: str) -> None:
    """Raise ``SignatureFormatError`` unless ``text`` is valid CycloneDX 1.6 JSON (strict validator)."""
    try:
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    except ValueError as exc:  # not JSON at all (json.JSONDecodeError)
        raise SignatureFormatError(f"ML-BOM is not JSON: {exc}") from None
    if error is not None:
        raise SignatureFormatError(f"ML-BOM is not valid CycloneDX 1.6: {error}")


def bom_model_digest(raw: bytes) -> str | None:
    """The SHA-256 of the BOM's model component (the content digest it was built for), or None."""
    try:
        component = json.loads(raw)["metadata"]["component"]
        if component.get("type") != "machine-learning-model":
            return None
        digest = next((h["content"] for h in component.get("hashes", []) if h.get("alg") == "SHA-256"), None)
        return digest if isinstance(digest, str) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _data_component(artifact: ArtifactDigest, role: str, index: int) -> Component:
    refs = [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(artifact.uri))] \
        if _URL.match(artifact.uri) else []
    return Component(
        type=ComponentType.DATA,
        name=artifact.uri,
        bom_ref=f"{role}-{index}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=artifact.sha256)],
        external_references=refs,
        properties=[Property(name="pipeshield:role", value=role), Property(name="pipeshield:uri", value=artifact.uri)],
    )


def _libraries(requirements: str) -> Iterable[Component]:
    """One ``library`` component per requirement line (pip options, comments and URLs skipped)."""
    seen = set()
    for line in requirements.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        pins = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        version = pins[0] if len(pins) == 1 else None
        properties = [] if version or not str(req.specifier) else \
            [Property(name="pipeshield:specifier", value=str(req.specifier))]
        yield Component(type=ComponentType.LIBRARY, name=name, version=version, bom_ref=f"pypi-{name}",
                        purl=PackageURL(type="pypi", name=name, version=version), properties=properties)


def _add_model_card(doc: dict, dataset_refs: list[str]) -> None:
    """cyclonedx-python-lib does not model ``modelCard``: add the datasets it was trained on by reference."""
    card: dict = {"bom-ref": "model-card"}
    if dataset_refs:
        card["modelParameters"] = {"datasets": [{"ref": ref} for ref in dataset_refs]}
    doc["metadata"]["component"]["modelCard"] = card
