"""Load YAML into plain Python values while remembering the line of every mapping key and value.

Built on PyYAML's node composer (safe: only plain scalars, lists and mappings). Duplicate mapping
keys are an error (PyYAML would silently keep the last one), reported with both lines. Anchors and
aliases are refused (a few aliases can expand into gigabytes: the "billion laughs").
"""

from __future__ import annotations

from typing import Any

import yaml

from pipeshield.errors import ManifestError

Location = tuple[str | int, ...]


class LineMap:
    """Lines (1-based) of values and keys, addressed by their path in the loaded document."""

    def __init__(self) -> None:
        self._values: dict[Location, int] = {}
        self._keys: dict[Location, int] = {}

    def record(self, path: Location, value_line: int, key_line: int | None = None) -> None:
        self._values[path] = value_line
        if key_line is not None:
            self._keys[path] = key_line

    def line(self, path: Location) -> int:
        """Line of the key naming ``path`` (or of the value), else of its nearest ancestor."""
        probe = tuple(path)
        while probe:
            if probe in self._keys:
                return self._keys[probe]
            if probe in self._values:
                return self._values[probe]
            probe = probe[:-1]
        return self._values.get((), 1)


def field_name(path: Location) -> str:
    """``stages.train.transit.pipeshield-data[1]`` for a document path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse ``text`` (one YAML document) into plain values plus a :class:`LineMap`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ManifestError(source, 1, "", "not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(source, line, "", f"not valid YAML: {problem}") from None
    lines = LineMap()
    if node is None:
        return None, lines
    return _build(node, (), lines, source, None, set()), lines


def _build(node: yaml.Node, path: Location, lines: LineMap, source: str, key_line: int | None,
           seen_nodes: set[int]) -> Any:
    if id(node) in seen_nodes:
        raise ManifestError(source, key_line or lines.line(path), field_name(path),
                            "YAML anchors and aliases are not supported; write the value out")
    seen_nodes.add(id(node))
    lines.record(path, node.start_mark.line + 1, key_line)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line_here = key_node.start_mark.line + 1
            key = _scalar(key_node, source)
            if not isinstance(key, str):
                raise ManifestError(source, key_line_here, field_name(path), f"keys must be text, got {key!r}")
            if key in seen:
                field = field_name((*path, key))
                raise ManifestError(
                    source, key_line_here, field, f"duplicate key {key!r} (first defined on line {seen[key]})"
                )
            seen[key] = key_line_here
            out[key] = _build(value_node, (*path, key), lines, source, key_line_here, seen_nodes)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, source, None, seen_nodes) for i, item in enumerate(node.value)]
    return _scalar(node, source)


def _scalar(node: yaml.Node, source: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ManifestError(source, node.start_mark.line + 1, "", "mapping keys must be plain values")
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # unknown tags (!!python/...), "!!int abc"...
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(source, node.start_mark.line + 1, "", f"unreadable value {node.value!r}: {problem}") from None
