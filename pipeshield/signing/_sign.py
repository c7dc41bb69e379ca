"""``sign_model``: scan, hash, bind, write the ML-BOM, sign in the OMS format with a KeyProvider key."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from pipeshield.bom import build_bom
from pipeshield.errors import ModelIntegrityError, ModelPathError, SignatureFormatError, UnsupportedOperationError
from pipeshield.keys import KeyProvider, KeyType
from pipeshield.scan import ScanPolicy, scan_or_raise
from pipeshield.signing import _oms
from pipeshield.signing._bindings import ModelBindings, bindings_document
from pipeshield.signing._files import GIT_PATHS, ProgressCallback, hash_files, list_model_files, root_digest
from pipeshield.signing._names import BINDINGS_FILE, BOM_FILE, RESERVED_FILES, SIGNATURE_FILE
from pipeshield.signing._results import SignedModel

REQUIREMENTS_FILE = "requirements.txt"


def sign_model(model_dir: str | os.PathLike[str], provider: KeyProvider, key_name: str, bindings: ModelBindings,
               *, workers: int | None = None, progress: ProgressCallback | None = None,
               scan_policy: ScanPolicy | None = None) -> SignedModel:
    root = Path(model_dir)
    if not bindings.name:
        raise SignatureFormatError("binding 'name' (the registered model name) is required to sign", "name")
    info = provider.key_info(key_name)
    if info.type is not KeyType.ECDSA_P256:
        raise UnsupportedOperationError(
            f"key {key_name!r} is {info.type.value}; model signing needs an {KeyType.ECDSA_P256.value} key "
            f"(pipeshield keys create {key_name} --type {KeyType.ECDSA_P256.value})")
    files, has_symlinks = list_model_files(root, RESERVED_FILES + GIT_PATHS)
    if not files:
        raise ModelPathError(f"model directory {str(root)!r} has no files to sign")
    scan_or_raise(files, scan_policy)
    digests = hash_files(files, workers=workers, progress=progress)
    content_digest = root_digest(digests)

    requirements = None
    if REQUIREMENTS_FILE in files:
        raw = files[REQUIREMENTS_FILE].read_bytes()
        if hashlib.sha256(raw).digest() != digests[REQUIREMENTS_FILE]:
            raise ModelIntegrityError(f"{REQUIREMENTS_FILE!r} changed while the model was being signed",
                                      REQUIREMENTS_FILE)
        requirements = raw.decode("utf-8", errors="replace")
    bom = build_bom(bindings, content_digest, requirements)
    bound = bindings_document(bindings, content_digest, BOM_FILE)
    signed = dict(digests)
    signed[BINDINGS_FILE] = hashlib.sha256(bound).digest()
    signed[BOM_FILE] = hashlib.sha256(bom).digest()

    statement = _oms.statement(bindings.name, signed, ignore_paths=[SIGNATURE_FILE, *GIT_PATHS],
                               allow_symlinks=has_symlinks)
    bundle, key_version, _ = _oms.sign_statement(statement, provider, key_name)
    _write_all(root, {BINDINGS_FILE: bound, BOM_FILE: bom, SIGNATURE_FILE: bundle.encode()})
    return SignedModel(
        path=root, signature_path=root / SIGNATURE_FILE, bindings=bindings, root_digest=root_digest(signed),
        content_digest=content_digest, key_name=key_name, key_version=key_version,
        files=tuple(sorted(signed)), total_bytes=sum(p.stat().st_size for p in files.values()) + len(bound) + len(bom),
    )


def _write_all(root: Path, contents: dict[str, bytes]) -> None:
    """Write every file to a temporary name first, then rename them all: no partial signature on failure."""
    temps: dict[str, str] = {}
    try:
        for name, data in contents.items():
            fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=root)
            temps[name] = temp
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
        for name, temp in temps.items():  # the signature (last) makes the set valid
            os.replace(temp, root / name)
    finally:
        for temp in temps.values():
            if os.path.exists(temp):
                os.unlink(temp)
