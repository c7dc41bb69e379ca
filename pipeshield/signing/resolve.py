"""Resolving what ``pipeshield verify`` is given into a local directory plus the bindings to expect.

Local paths resolve to themselves. Any other ``scheme:...`` target (e.g. ``models:/churn/3``) is handed
to the resolver registered under that scheme in the ``pipeshield.model_resolvers`` entry-point group:
a callable ``resolver(target, settings)`` returning a context manager that yields a
:class:`ResolvedModel` (e.g. a verified-to-be download in a temporary directory, removed on exit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from pathlib import Path

from pipeshield.config import Settings
from pipeshield.errors import ConfigError
from pipeshield.signing._bindings import ModelBindings

ENTRY_POINT_GROUP = "pipeshield.model_resolvers"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):")


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A local copy of the model to verify and the bindings the target implies (e.g. name and version)."""

    path: Path
    expected: ModelBindings = ModelBindings()


ModelResolver = Callable[[str, Settings], AbstractContextManager[ResolvedModel]]


@contextlib.contextmanager
def resolve_model(target: str, settings: Settings) -> Iterator[ResolvedModel]:
    """The :class:`ResolvedModel` for a local directory or a ``scheme:`` URI with a registered resolver."""
    match = _SCHEME.match(target)
    if match is None or Path(target).exists():
        yield ResolvedModel(Path(target))
        return
    scheme = match.group(1).lower()
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not found:
        raise ConfigError(target, f"no model resolver for {scheme!r} URIs (entry-point group {ENTRY_POINT_GROUP!r})")
    resolver: ModelResolver = found[0].load()
    with resolver(target, settings) as resolved:
        yield resolved
