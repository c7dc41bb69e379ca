"""Which stage a task belongs to: one explicit signal, then the operator's own ``stage``, then the manifest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeshield.stages._manifest import StageManifest

#: Task-level marker: ``params={"pipeshield_stage": "train"}``.
MARKER = "pipeshield_stage"


def resolve_stage(manifest: StageManifest, params: Mapping[str, Any] | None, stage_attribute: Any,
                  class_names: Iterable[str]) -> tuple[str | None, str]:
    """``(stage, how)``: ``how`` is ``marker``, ``operator`` (its ``stage`` attribute), ``manifest``
    (the class is listed under a stage's ``operators``) or ``none``. The stage may be unknown to the
    manifest; callers refuse it."""
    marked = (params or {}).get(MARKER)
    if marked:
        return str(marked), "marker"
    if isinstance(stage_attribute, str) and stage_attribute:
        return stage_attribute, "operator"
    claimed = manifest.stage_for_operator(class_names)
    if claimed is not None:
        return claimed, "manifest"
    return None, "none"
