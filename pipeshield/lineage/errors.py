"""Errors of the lineage layer (all :class:`~pipeshield.errors.PipeshieldError`)."""

from __future__ import annotations

from pipeshield.errors import PipeshieldError


class LineageError(PipeshieldError):
    """A lineage operation could not be done; the message names the cause."""


class LedgerError(LineageError):
    """The lineage ledger store could not be opened or read."""


class ModelVerificationError(LineageError):
    """A model failed verification at load; nothing was loaded or served."""


class VerifierUnavailableError(LineageError):
    """No model verifier is available, so a model cannot be loaded safely."""
