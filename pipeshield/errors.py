"""Error types. Every failure pipeshield reports is a ``PipeshieldError``.

Messages name the cause and never contain key material, tokens or secret ids.
"""

from __future__ import annotations

import errno


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


# --- model signing, scanning and verification --------------------------------


class SignatureError(PipeshieldError):
    """A model signature is missing, malformed, untrusted or does not match the model.

    ``subject`` names the file or binding at fault when there is one.
    """

    def __init__(self, message: str, subject: str | None = None) -> None:
        self.subject = subject
        super().__init__(message)


class SignatureFormatError(SignatureError):
    """A signature bundle, bindings file or ML-BOM is malformed or of an unsupported kind."""


class UntrustedSignatureError(SignatureError):
    """The signature is invalid, made by an unknown key, or by a retired key version."""


class ModelIntegrityError(SignatureError):
    """The model's files differ from the signed manifest (a file changed, added or removed)."""


class BindingMismatchError(SignatureError):
    """The signed bindings (registered name, version, run, datasets...) differ from what was expected."""


class ModelPathError(PipeshieldError):
    """A model directory holds a path pipeshield refuses: a symlink leaving it, a traversal name, a special file."""


class UnsafeModelError(PipeshieldError):
    """The artifact scan found a dangerous or unknown pickle global, failed to parse a file, or ran out of budget."""

    def __init__(self, message: str, findings: tuple[str, ...] = ()) -> None:
        self.findings = findings
        super().__init__(message)


# --- data gate ------------------------------------------------------------


class DataGateError(PipeshieldError):
    """The data gate could not check a batch, or the batch did not pass."""


class DataInputError(DataGateError):
    """A dataset cannot be read: missing, unreadable, empty or of an unsupported format."""


class ExpectationSuiteError(DataGateError):
    """A Great Expectations suite is missing, malformed or names an unknown expectation."""


class DataGateFailed(DataGateError):
    """The batch was flagged and the policy is ``fail``; names the checks that fired and the report."""

    def __init__(self, checks: list[str], report_path: str) -> None:
        self.checks = checks
        self.report_path = report_path
        super().__init__(f"data gate failed: {', '.join(checks)} fired (report: {report_path})")


# --- output destinations -----------------------------------------------------


class DestinationWriteError(PipeshieldError):
    """The destination could not take the output (disk full, file too large, read-only, no permission).

    Nothing was written there: the partial temporary file was removed and an existing file is unchanged.
    """

    def __init__(self, destination: str, cause: OSError) -> None:
        self.destination = destination
        self.errno = cause.errno
        reason = cause.strerror or type(cause).__name__
        code = errno.errorcode.get(cause.errno or 0, "")
        super().__init__(f"cannot write {destination!r}: {reason}{f' ({code})' if code else ''}; "
                         "nothing was written there")
