"""Tokenization of sensitive columns in tables (pandas, parquet, CSV).

Two treatments per column (see ``docs/tokenization.md`` for which to use when):

- **tokens**: deterministic keyed tokens, ``tok:v<N>:<43 chars>`` = HMAC-SHA-256 of the value under a
  column key the provider derives (one ``provider.hmac`` call per domain, never per value). Equal
  values give equal tokens under the same key version, so joins and group-bys still work; the value
  cannot be recovered.
- **encrypted**: reversible field encryption with ``provider.encrypt``/``provider.decrypt`` (Vault
  Transit ``vault:vN:`` ciphertexts); derived keys get the context ``<context>|<column>``. One provider
  call per non-null cell: use it for the few values that must come back.

Missing values stay missing. Values are encoded as JSON before encryption, so ints, floats, bools
and strings come back with their type.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd

from pipeshield.datasets import sha256_file
from pipeshield.envelope._files import atomic_output
from pipeshield.errors import PipeshieldError
from pipeshield.keys import KeyProvider
from pipeshield.lineage import lineage_span

# a token format marker, not a password
TOKEN_PREFIX = "tok:"  # nosec B105
_SUBKEY_LABEL = b"pipeshield-tokenize-v1\x1f"


class TokenizeError(PipeshieldError):
    """Columns are missing or overlap, a format is unsupported, or a value cannot be restored."""


@dataclasses.dataclass(frozen=True)
class TokenizeResult:
    """What a tokenization did: never any values or keys."""

    rows: int
    token_columns: tuple[str, ...]
    encrypted_columns: tuple[str, ...]
    key_name: str
    key_version: int | None
    output_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tokenize_frame(
    frame: pd.DataFrame, provider: KeyProvider, *, key_name: str, context: str,
    token_columns: Sequence[str] = (), encrypt_columns: Sequence[str] = (), domain: str = "",
) -> tuple[pd.DataFrame, TokenizeResult]:
    """A copy of ``frame`` with ``token_columns`` tokenized and ``encrypt_columns`` encrypted.

    ``domain`` separates token spaces: tables tokenized with the same key and domain can be joined
    on their tokens. ``context`` binds the encrypted fields (for derived keys).
    """
    tokens, encrypted = _check_columns(frame, token_columns, encrypt_columns)
    out = frame.copy()
    version: int | None = None
    with lineage_span("tokenize", {"pipeshield.tokenize.key_name": key_name,
                                   "pipeshield.tokenize.token_columns": list(tokens),
                                   "pipeshield.tokenize.encrypted_columns": list(encrypted),
                                   "pipeshield.tokenize.rows": len(frame)}) as span:
        if tokens:
            version, subkey = _token_key(provider, key_name, domain)
            for column in tokens:
                out[column] = _map_present(frame[column], lambda v: _token(subkey, version, v))
        if encrypted:
            derived = provider.key_info(key_name).derived
            for column in encrypted:
                column_context = f"{context}|{column}".encode() if derived else None
                out[column] = _map_present(
                    frame[column],
                    lambda v, c=column_context: provider.encrypt(key_name, _encode(v), context=c),
                )
                version = version or _first_version(out[column])
        if version is not None:
            span.set_attribute("pipeshield.tokenize.key_version", version)
    return out, TokenizeResult(len(frame), tokens, encrypted, key_name, version)


def detokenize_frame(
    frame: pd.DataFrame, provider: KeyProvider, *, key_name: str, context: str, encrypt_columns: Sequence[str],
) -> pd.DataFrame:
    """A copy of ``frame`` with ``encrypt_columns`` decrypted back to their values (tokens stay tokens)."""
    _, encrypted = _check_columns(frame, (), encrypt_columns)
    out = frame.copy()
    with lineage_span("detokenize", {"pipeshield.tokenize.key_name": key_name,
                                     "pipeshield.tokenize.encrypted_columns": list(encrypted),
                                     "pipeshield.tokenize.rows": len(frame)}):
        derived = provider.key_info(key_name).derived
        for column in encrypted:
            column_context = f"{context}|{column}".encode() if derived else None
            out[column] = _map_present(
                frame[column], lambda v, c=column_context: _decode(provider.decrypt(key_name, str(v), context=c))
            )
    return out


def tokenize_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], provider: KeyProvider, *, key_name: str,
    context: str, token_columns: Sequence[str] = (), encrypt_columns: Sequence[str] = (), domain: str = "",
) -> TokenizeResult:
    """Tokenize a CSV or parquet file (format from the suffix) into ``dst``, written atomically."""
    table_format(dst)
    frame = read_table(src)
    out, result = tokenize_frame(frame, provider, key_name=key_name, context=context, domain=domain,
                                 token_columns=token_columns, encrypt_columns=encrypt_columns)
    _write_file(out, dst)
    return dataclasses.replace(result, output_sha256=sha256_file(dst))


def detokenize_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], provider: KeyProvider, *, key_name: str,
    context: str, encrypt_columns: Sequence[str],
) -> None:
    """Decrypt the ``encrypt_columns`` of a CSV or parquet file into ``dst``, written atomically."""
    out = detokenize_frame(read_table(src), provider, key_name=key_name, context=context,
                           encrypt_columns=encrypt_columns)
    _write_file(out, dst)


def read_table(source: str | os.PathLike[str] | IO[bytes], fmt: str | None = None) -> pd.DataFrame:
    """A CSV (all columns as text) or parquet table from a path or a binary stream (``fmt``: csv/parquet)."""
    kind = fmt or table_format(source)  # type: ignore[arg-type]
    if kind == "parquet":
        return pd.read_parquet(source)
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])


def write_table(frame: pd.DataFrame, dst: IO[bytes], fmt: str) -> None:
    """Write ``frame`` as CSV or parquet to a binary stream."""
    if fmt == "parquet":
        frame.to_parquet(dst, index=False)
    else:
        dst.write(frame.to_csv(index=False).encode("utf-8"))


def table_format(path: str | os.PathLike[str]) -> str:
    """``csv`` or ``parquet`` from a file name's suffix."""
    suffix = Path(str(path)).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise TokenizeError(f"unsupported table format {suffix!r} for {str(path)!r}: use .csv or .parquet")


def _write_file(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    fmt = table_format(path)
    with atomic_output(path) as handle:
        write_table(frame, handle, fmt)


def _check_columns(frame: pd.DataFrame, tokens: Sequence[str], encrypted: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tokens, encrypted = tuple(tokens), tuple(encrypted)
    missing = [c for c in (*tokens, *encrypted) if c not in frame.columns]
    if missing:
        raise TokenizeError(f"columns not in the table: {missing}")
    both = sorted(set(tokens) & set(encrypted))
    if both:
        raise TokenizeError(f"columns cannot be both tokenized and encrypted: {both}")
    if not tokens and not encrypted:
        raise TokenizeError("no columns given: pass token_columns and/or encrypt_columns")
    return tokens, encrypted


def _token_key(provider: KeyProvider, key_name: str, domain: str) -> tuple[int, bytes]:
    """(key version, 32-byte column key) = the provider's HMAC over a fixed label and the domain."""
    derived = provider.hmac(key_name, _SUBKEY_LABEL + domain.encode("utf-8"))
    prefix, _, encoded = derived.rpartition(":")
    version = int(prefix.split(":v")[-1])
    return version, hashlib.sha256(base64.b64decode(encoded)).digest()


def _token(subkey: bytes, version: int, value: Any) -> str:
    mac = hmac.new(subkey, _canonical_text(value).encode("utf-8"), hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}v{version}:" + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def _canonical_text(value: Any) -> str:
    """Text a value is tokenized as: integral floats as ints, so 42 and 42.0 (CSV vs parquet) match."""
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _encode(value: Any) -> bytes:
    return json.dumps(_plain(value)).encode("utf-8")


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TokenizeError("a decrypted field is not a pipeshield-encrypted value") from None


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _map_present(series: pd.Series, func: Any) -> pd.Series:
    present = series.notna()
    out = pd.Series(pd.NA, index=series.index, dtype="object")
    out[present] = [func(v) for v in series[present]]
    return out


def _first_version(series: pd.Series) -> int | None:
    for value in series.dropna():
        return int(str(value).split(":")[1][1:])
    return None
