"""Error types. Every failure pipeshield reports is a ``PipeshieldError``.

Messages name the cause and never contain key material, tokens or secret ids.
"""

from __future__ import annotations


class PipeshieldError(Exception):
    """Base class of every error pipeshield raises on purpose."""


class ConfigError(PipeshieldError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {problem}")


# --- key management -------------------------------------------------------


class KeyProviderError(PipeshieldError):
    """A key provider could not do what was asked."""


class KeyNotFoundError(KeyProviderError):
    """The named key does not exist."""

    def __init__(self, key_name: str) -> None:
        self.key_name = key_name
        super().__init__(f"key {key_name!r} not found")


class KeyExistsError(KeyProviderError):
    """A key of that name exists with a different type."""


class KeyVersionError(KeyProviderError):
    """A key version is unknown, too new, or below the key's minimum decryption version."""


class InvalidWrappedKeyError(KeyProviderError):
    """A wrapped key, ciphertext or signature string is malformed, truncated or tampered with."""


class UnsupportedOperationError(KeyProviderError):
    """The key's type does not support the operation (e.g. signing with an AES key)."""


class PermissionDeniedError(KeyProviderError):
    """The provider refused the operation; the message names the path (and stage when known)."""

    def __init__(self, path: str, operation: str = "", stage: str | None = None) -> None:
        self.path = path
        self.operation = operation
        self.stage = stage
        who = f"stage {stage!r} " if stage else ""
        what = f" {operation}" if operation else ""
        super().__init__(f"permission denied: {who}may not{what} on {path!r}")


class AuthenticationError(KeyProviderError):
    """Logging in to the key service failed (bad role, secret id, JWT or token)."""


class ProviderUnavailableError(KeyProviderError):
    """The key service could not be reached or kept failing after bounded retries."""


class KeyringCorruptedError(KeyProviderError):
    """A local keyring file is unreadable or fails its integrity check; nothing was overwritten."""


class WrongMasterKeyError(KeyProviderError):
    """The master key does not open this keyring."""


# --- per-stage identity ----------------------------------------------------


class StageError(PipeshieldError):
    """A pipeline stage is unknown, misconfigured or lacks its own credentials."""


class ManifestError(StageError):
    """A stage manifest is invalid; the message names the file, the line and the field."""

    def __init__(self, source: str, line: int, field: str, problem: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = f" {field}:" if field else ""
        super().__init__(f"{source}:{line}:{where} {problem}")


class UnknownStageError(StageError):
    """A task or process names a stage the manifest does not define."""

    def __init__(self, stage: str, known: list[str]) -> None:
        self.stage = stage
        super().__init__(f"unknown stage {stage!r}; the manifest defines: {', '.join(known) or 'none'}")


class StageCredentialsError(StageError):
    """A stage has no credentials of its own (pipeshield never falls back to a shared token)."""
