"""Fuzz target for the stage manifest parser (YAML loader, schema, cross-stage rules).

Runs briefly in ``make test``; ``make soak`` runs it long. Whatever the text, ``parse_manifest`` returns a
manifest or raises ``ManifestError`` naming a line (never another exception), and never hangs.
"""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pipeshield.errors import ManifestError
from pipeshield.stages import default_manifest_path, parse_manifest
from tests.fuzz._hostile import FUZZ, JSON, MUTATION, mutate, replace_at, watchdog

SHIPPED = default_manifest_path().read_text(encoding="utf-8")
YAML_NOISE = st.sampled_from(["&a ", "*a", "!!python/object:os.system ", "<<: ", "? ", "- ", ": ", "{", "}", "[",
                              "]", "|", ">", "'", '"', "#", "\t", "  ", "\n", "---\n", "...\n", "%YAML 1.1\n",
                              "~", "!!binary ", "0x1F", "1e400", ".inf", "yes", "null"])


def _parse(text: str) -> None:
    with watchdog():
        try:
            manifest = parse_manifest(text, "fuzz.yaml")
        except ManifestError as error:
            assert error.line >= 1 and str(error).startswith("fuzz.yaml:")
        else:
            assert manifest.stages  # a manifest that parses is a usable one


@pytest.mark.reliability("hostile input", "fuzz: stage manifest parser on mutated YAML text",
                         "parses or ManifestError naming a line; never another exception; never hangs")
@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), inserts=st.lists(
    st.tuples(st.integers(min_value=0, max_value=2**16), YAML_NOISE), max_size=3))
def test_manifest_text_mutations(mutations, inserts, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    text = SHIPPED
    for where, token in inserts:
        at = where % (len(text) + 1)
        text = text[:at] + token + text[at:]
    raw = text.encode()
    for mutation in mutations:
        raw = mutate(raw, *mutation)
    _parse(raw.decode("utf-8", "replace"))


@pytest.mark.reliability("hostile input", "fuzz: stage manifest parser on structurally mutated documents",
                         "parses or ManifestError naming a line; never another exception; never hangs")
@FUZZ
@given(path=st.lists(st.integers(min_value=0, max_value=2**16), max_size=6), value=JSON)
def test_manifest_structure_mutations(path, value, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    document = yaml.safe_load(SHIPPED)
    _parse(yaml.safe_dump(replace_at(document, path, value), sort_keys=False))
