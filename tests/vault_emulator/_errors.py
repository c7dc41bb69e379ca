"""Vault error responses: ``{"errors": [...]}`` with the status code Vault uses (spec §1.3)."""

from __future__ import annotations

PERMISSION_DENIED = "1 error occurred:\n\t* permission denied\n\n"
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
UNSUPPORTED_PATH = "1 error occurred:\n\t* unsupported path\n\n"
UNSUPPORTED_OPERATION = "1 error occurred:\n\t* unsupported operation\n\n"


class VaultError(Exception):
    """Raised by handlers; becomes an HTTP error response. ``messages=[]`` gives ``{"errors":[]}``."""

    def __init__(self, status: int, *messages: str, body: dict | None = None) -> None:
        super().__init__(status, messages)
        self.status = status
        self.messages = list(messages)
        self.body = body  # a full body instead of {"errors": [...]} (KV v2 deleted versions)


def permission_denied() -> VaultError:
    return VaultError(403, PERMISSION_DENIED)
