"""``EncryptOperator``, ``DecryptOperator``, ``TokenizeColumnsOperator``: thin adapters over
:mod:`pipeshield.envelope` and :mod:`pipeshield.tokenize`.

Paths are templated and may be local paths or object-storage URIs (``ObjectStoragePath``). The key
provider comes from :class:`~pipeshield.hooks.keys.KeyProviderHook` (``vault_conn_id``, falling back to
``PIPESHIELD_*`` settings). XCom values carry digests, sizes, key name and version: never key material.

By default an envelope is bound to its own location (``{"path": <encrypted file>}``): the decrypting
task must name the same location, or both tasks pass the same explicit ``binding``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from pipeshield.datasets import sha256_stream
from pipeshield.envelope import DEFAULT_CHUNK_SIZE, decrypt_stream, encrypt_stream
from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.keys import KeyProvider
from pipeshield.operators._storage import open_source, staged_destination
from pipeshield.tokenize import read_table, table_format, tokenize_frame, write_table


class _KeyedOperator(BaseOperator):
    """Common arguments: the Vault connection, the stage identity and the wrapping key."""

    def __init__(self, *, key_name: str | None = None, vault_conn_id: str = KeyProviderHook.default_conn_name,
                 stage: str = "train", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key_name = key_name
        self.vault_conn_id = vault_conn_id
        self.stage = stage

    def _provider(self) -> tuple[KeyProvider, str]:
        hook = KeyProviderHook(vault_conn_id=self.vault_conn_id, stage=self.stage)
        settings = hook.get_settings()
        return hook.get_provider(), self.key_name or settings.wrapping_key


class EncryptOperator(_KeyedOperator):
    """Envelope-encrypt ``src`` to ``dst`` under a fresh data key wrapped by ``key_name``.

    ``binding`` (templated; text or a mapping) is what the envelope is bound to; default ``{"path": dst}``.
    """

    template_fields: Sequence[str] = ("src", "dst", "key_name", "binding")
    ui_color = "#aed6f1"

    def __init__(self, *, src: str, dst: str, binding: str | Mapping[str, Any] | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.src, self.dst, self.binding, self.chunk_size = src, dst, binding, chunk_size

    def execute(self, context: Context) -> dict[str, Any]:
        provider, key_name = self._provider()
        with provider, open_source(self.src) as source, staged_destination(self.dst) as out:
            result = encrypt_stream(source, out, provider, key_name=key_name, chunk_size=self.chunk_size,
                                    context=_binding(self.binding, self.dst), digests=True)
        self.log.info("encrypted %s -> %s under key %s v%d (plaintext sha256 %s)", self.src, self.dst,
                      result.key_name, result.key_version, result.plaintext_sha256)
        return {"src": self.src, "dst": self.dst, "stage": self.stage, **result.as_dict()}


class DecryptOperator(_KeyedOperator):
    """Verify and decrypt envelope ``src`` into ``dst``; nothing appears at ``dst`` unless every chunk verifies.

    ``binding`` must equal the one used to encrypt; default ``{"path": src}``. ``key_name``, when given,
    refuses envelopes wrapped under another key.
    """

    template_fields: Sequence[str] = ("src", "dst", "key_name", "binding")
    ui_color = "#aed6f1"

    def __init__(self, *, src: str, dst: str, binding: str | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.src, self.dst, self.binding = src, dst, binding

    def execute(self, context: Context) -> dict[str, Any]:
        hook = KeyProviderHook(vault_conn_id=self.vault_conn_id, stage=self.stage)
        with hook.get_provider() as provider, open_source(self.src) as source, staged_destination(self.dst) as out:
            result = decrypt_stream(source, out, provider, key_name=self.key_name,
                                    context=_binding(self.binding, self.src), digests=True)
        self.log.info("decrypted %s -> %s (key %s v%d, plaintext sha256 %s)", self.src, self.dst,
                      result.key_name, result.key_version, result.plaintext_sha256)
        return {"src": self.src, "dst": self.dst, "stage": self.stage, **result.as_dict()}


class TokenizeColumnsOperator(_KeyedOperator):
    """Tokenize ``token_columns`` and encrypt ``encrypt_columns`` of a CSV/parquet table (see
    ``docs/tokenization.md``). ``binding`` is the context of encrypted fields; default ``dst``."""

    template_fields: Sequence[str] = ("src", "dst", "key_name", "binding", "token_columns", "encrypt_columns")
    ui_color = "#d7bde2"

    def __init__(self, *, src: str, dst: str, token_columns: Sequence[str] = (), encrypt_columns: Sequence[str] = (),
                 binding: str | None = None, domain: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.src, self.dst, self.binding, self.domain = src, dst, binding, domain
        self.token_columns, self.encrypt_columns = list(token_columns), list(encrypt_columns)

    def execute(self, context: Context) -> dict[str, Any]:
        provider, key_name = self._provider()
        out_format = table_format(self.dst)
        with provider:
            with open_source(self.src) as source:
                frame = read_table(source, table_format(self.src))
            tokenized, result = tokenize_frame(
                frame, provider, key_name=key_name, context=self.binding or self.dst, domain=self.domain,
                token_columns=self.token_columns, encrypt_columns=self.encrypt_columns,
            )
        with staged_destination(self.dst) as out:
            write_table(tokenized, out, out_format)
        with open_source(self.dst) as written:
            result = dataclasses.replace(result, output_sha256=sha256_stream(written))
        return {"src": self.src, "dst": self.dst, "stage": self.stage, **result.as_dict()}


def _binding(binding: str | Mapping[str, Any] | None, location: str) -> str | Mapping[str, Any]:
    return {"path": location} if binding is None else binding
