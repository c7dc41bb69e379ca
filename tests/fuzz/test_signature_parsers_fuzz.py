"""Fuzz targets for the signature bundle, the signed statement, the bindings file and the ML-BOM.

Runs briefly in ``make test``; ``make soak`` (``PIPESHIELD_FUZZ_EXAMPLES=20000``) runs it long. Whatever the
bytes or the JSON structure, the parsers either succeed or raise ``SignatureFormatError`` (never another
exception), nothing hangs, and ``verify_model`` answers a mutated bundle with a failed result (never an
exception), accepting it only when what it signs is unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeshield.bom import bom_model_digest, validate_bom
from pipeshield.errors import SignatureFormatError
from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.signing import BINDINGS_FILE, BOM_FILE, SIGNATURE_FILE, ArtifactDigest, ModelBindings, TrustedKeys
from pipeshield.signing import sign_model, verify_model
from pipeshield.signing._bindings import parse_bindings_document
from pipeshield.signing._oms import decode_statement, read_bundle
from tests.fuzz._hostile import FUZZ, JSON, MUTATION, mutate, replace_at, watchdog

PATHS = st.lists(st.integers(min_value=0, max_value=2**16), max_size=6)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrustedKeys, dict[str, bytes]]:
    """A signed model directory, the keys that verify it, and its three sidecar files."""
    root = tmp_path_factory.mktemp("fuzz-signed")
    provider = LocalKeyProvider(root / "keyring", os.urandom(32))
    provider.create_key("sig", KeyType.ECDSA_P256)
    model = root / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "weights.json").write_text('{"coef": [1, 2]}\n')
    (model / "requirements.txt").write_text("scikit-learn==1.5.2\n")
    bindings = ModelBindings(name="fuzz", version=1, run_id="r1",
                             datasets=(ArtifactDigest("s3://b/train.csv", "ab" * 32),))
    sign_model(model, provider, "sig", bindings)
    sidecars = {name: (model / name).read_bytes() for name in (SIGNATURE_FILE, BINDINGS_FILE, BOM_FILE)}
    return model, TrustedKeys.from_provider(provider, "sig"), sidecars


def _json_mutant(raw: bytes, path: list[int], value: object) -> bytes:
    return json.dumps(replace_at(json.loads(raw), path, value)).encode()


def _parse_or_format_error(parse, data) -> None:  # noqa: ANN001
    with watchdog():
        try:
            parse(data)
        except SignatureFormatError:
            pass


@pytest.mark.reliability("hostile input", "fuzz: signature bundle parser on mutated bytes and JSON",
                         "parses or SignatureFormatError; never another exception; never hangs")
@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), path=PATHS, value=JSON, structural=st.booleans())
def test_bundle_parser(signed, tmp_path_factory, mutations, path, value, structural, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    raw = signed[2][SIGNATURE_FILE]
    if structural:
        raw = _json_mutant(raw, path, value)
    for mutation in mutations:
        raw = mutate(raw, *mutation)
    target = tmp_path_factory.getbasetemp() / "fuzz-bundle.sig"
    target.write_bytes(raw)
    _parse_or_format_error(read_bundle, target)


@pytest.mark.reliability("hostile input", "fuzz: signed in-toto statement decoder on mutated JSON",
                         "decodes or SignatureFormatError; never another exception; never hangs")
@FUZZ
@given(path=PATHS, value=JSON, mutations=st.lists(MUTATION, max_size=2))
def test_statement_decoder(signed, path, value, mutations, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    payload = read_bundle(signed[0] / SIGNATURE_FILE).payload
    raw = _json_mutant(payload, path, value)
    for mutation in mutations:
        raw = mutate(raw, *mutation)
    _parse_or_format_error(decode_statement, raw)


@pytest.mark.reliability("hostile input", "fuzz: bindings file parser on arbitrary bytes and mutated JSON",
                         "parses or SignatureFormatError; never another exception; never hangs")
@FUZZ
@given(path=PATHS, value=JSON, noise=st.binary(max_size=200), mode=st.sampled_from(["json", "bytes"]))
def test_bindings_parser(signed, path, value, noise, mode, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    raw = _json_mutant(signed[2][BINDINGS_FILE], path, value) if mode == "json" else noise
    _parse_or_format_error(parse_bindings_document, raw)


@pytest.mark.reliability("hostile input", "fuzz: ML-BOM reader and CycloneDX validator on mutated BOMs",
                         "a digest or None / SignatureFormatError; never another exception; never hangs")
@FUZZ
@given(path=PATHS, value=JSON, mutations=st.lists(MUTATION, max_size=2))
def test_bom_reader(signed, path, value, mutations, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    raw = _json_mutant(signed[2][BOM_FILE], path, value)
    for mutation in mutations:
        raw = mutate(raw, *mutation)
    with watchdog():
        digest = bom_model_digest(raw)
    assert digest is None or isinstance(digest, str)
    _parse_or_format_error(validate_bom, raw.decode("utf-8", "replace"))


@pytest.mark.reliability("hostile input", "fuzz: verify_model with a mutated signature bundle",
                         "a failed VerificationResult (never an exception); accepted only if the signed bytes are unchanged")
@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_verify_with_mutated_bundle(signed, mutations, reliability) -> None:  # noqa: ANN001
    reliability(fuzz_examples=1)
    model, keys, sidecars = signed
    raw = sidecars[SIGNATURE_FILE]
    for mutation in mutations:
        raw = mutate(raw, *mutation)
    (model / SIGNATURE_FILE).write_bytes(raw)
    try:
        with watchdog():
            result = verify_model(model, keys)
    finally:
        (model / SIGNATURE_FILE).write_bytes(sidecars[SIGNATURE_FILE])
    if result.ok:  # e.g. whitespace inserted into the JSON: the signed payload and signature must be intact
        original, mutated = read_bundle(model / SIGNATURE_FILE), _read_bytes_bundle(model.parent, raw)
        assert (mutated.payload, mutated.signature_der) == (original.payload, original.signature_der)
    else:
        assert result.subject == SIGNATURE_FILE and result.reason


def _read_bytes_bundle(folder: Path, raw: bytes):  # noqa: ANN202
    path = folder / "accepted.sig"
    path.write_bytes(raw)
    return read_bundle(path)
