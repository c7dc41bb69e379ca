"""A test issuer of Kubernetes service-account JWTs (what the kubelet mounts into a pod)."""

from __future__ import annotations

import datetime
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class KubernetesJWTIssuer:
    """Signs service-account tokens with its own P-256 key.

    Give ``certificate_pem`` to Vault as ``pem_keys`` (hvac accepts only certificates there; Vault
    extracts the public key)."""

    def __init__(self, issuer: str = "https://kubernetes.default.svc.cluster.local") -> None:
        self.issuer = issuer
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service-account-issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                       .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(days=1))
                       .not_valid_after(now + datetime.timedelta(days=365)).sign(self._key, hashes.SHA256()))
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, namespace: str, service_account: str, *, audience: str | list[str] | None = None,
              expires_in: int = 3600, projected: bool = True) -> str:
        """A signed JWT for ``namespace/service_account`` (projected claims by default, legacy if not)."""
        now = int(time.time())
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{service_account}"))
        claims: dict[str, object]
        if projected:
            claims = {"iss": self.issuer, "sub": f"system:serviceaccount:{namespace}:{service_account}",
                      "iat": now, "nbf": now, "exp": now + expires_in,
                      "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": uid}}}
            if audience is not None:
                claims["aud"] = audience
        else:
            claims = {"iss": "kubernetes/serviceaccount", "sub": f"system:serviceaccount:{namespace}:{service_account}",
                      "kubernetes.io/serviceaccount/namespace": namespace,
                      "kubernetes.io/serviceaccount/secret.name": f"{service_account}-token",
                      "kubernetes.io/serviceaccount/service-account.name": service_account,
                      "kubernetes.io/serviceaccount/service-account.uid": uid}
        return jwt.encode(claims, self._key, algorithm="ES256")
