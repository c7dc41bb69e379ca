"""The model verifier lineage uses: the signed-registry deploy gate (``pipeshield.registry``).

It re-hashes every file of a registered version, checks the signature with the trusted keys
(``PIPESHIELD_TRUSTED_KEYS_DIR`` or the key provider's public keys), the registry bindings and the
immutable signature tags, and reads the signed dataset and gate-report digests from the verified copy.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeshield.config import Settings
from pipeshield.datasets import sha256_file
from pipeshield.errors import ConfigError, KeyProviderError, PipeshieldError
from pipeshield.lineage.errors import ModelVerificationError, VerifierUnavailableError
from pipeshield.lineage.verify import DatasetBinding, GateReportBinding, VerifiedModel


class SignedRegistryVerifier:
    """:class:`~pipeshield.lineage.verify.ModelVerifier` backed by ``verify_registered_model``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def __call__(self, name: str, version: str, *, tracking_uri: str | None, dest: Path) -> VerifiedModel:
        from mlflow.tracking import MlflowClient

        from pipeshield.registry import trusted_keys, verify_registered_model
        from pipeshield.signing import BINDINGS_FILE, SIGNATURE_FILE, ModelBindings

        settings = self.settings or Settings.load()
        uri = tracking_uri or settings.mlflow_tracking_uri
        try:
            keys = trusted_keys(settings)
        except (ConfigError, KeyProviderError) as exc:
            raise VerifierUnavailableError(f"no trusted signing keys to verify with: {exc}") from None
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            verified = verify_registered_model(name, version, keys=keys, client=client, dest_dir=dest,
                                               settings=settings)
        except PipeshieldError as exc:
            raise ModelVerificationError(f"models:/{name}/{version} failed verification: {exc}") from None
        document = json.loads((verified.path / BINDINGS_FILE).read_bytes())  # a signed, verified file
        bindings = ModelBindings.from_dict(document.get("bindings") or {})
        signature = verified.path / SIGNATURE_FILE
        return VerifiedModel(
            name=verified.name, version=str(verified.version), local_path=verified.path,
            manifest_digest=verified.root_digest,
            signature_digest=sha256_file(signature) if signature.is_file() else None,
            model_id=verified.model_id, run_id=verified.run_id,
            datasets=tuple(DatasetBinding(d.uri, d.sha256) for d in bindings.datasets),
            gate_reports=tuple(GateReportBinding(g.sha256, None, g.uri) for g in bindings.gate_reports),
        )


def signed_registry_verifier() -> SignedRegistryVerifier | None:
    """The factory :data:`~pipeshield.lineage.verify.VERIFIER_FACTORIES` starts with."""
    try:
        import pipeshield.registry  # noqa: F401
    except ImportError:
        return None
    return SignedRegistryVerifier()
