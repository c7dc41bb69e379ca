"""Errors of the MLflow registry integration."""

from __future__ import annotations

from pipeshield.errors import PipeshieldError


class RegistryError(PipeshieldError):
    """MLflow could not be reached, or a model, version or alias does not exist or has no artifacts."""


class RegistrationRefusedError(RegistryError):
    """The registry refused a model version (e.g. ``PERMISSION_DENIED`` from the signed store); nothing was registered."""


class MlflowUnreachableError(RegistryError):
    """The MLflow tracking server did not answer (down, refused the connection, or timed out)."""


class VersionConflictError(RegistrationRefusedError):
    """The signature binds another version number than the one the registry assigns next."""

    def __init__(self, message: str, *, signed_version: int, assigned_version: int) -> None:
        super().__init__(message)
        self.signed_version = signed_version
        self.assigned_version = assigned_version
