"""File names pipeshield writes into a signed model directory."""

SIGNATURE_FILE = "pipeshield.sig"
"""Sigstore bundle (OMS format); listed in the signed ``ignore_paths`` so it is not part of the manifest."""

BINDINGS_FILE = "pipeshield.bindings.json"
"""Registered name, version, MLflow ids, dataset and gate-report digests; hashed and signed like a model file."""

BOM_FILE = "pipeshield.bom.json"
"""CycloneDX 1.6 ML-BOM; hashed and signed like a model file."""

RESERVED_FILES = (SIGNATURE_FILE, BINDINGS_FILE, BOM_FILE)
