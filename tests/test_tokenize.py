"""Tokenization: deterministic joinable tokens, reversible encrypted fields, CSV and parquet files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeshield.datasets import sha256_file
from pipeshield.errors import InvalidWrappedKeyError
from pipeshield.keys import LocalKeyProvider
from pipeshield.tokenize import TokenizeError, detokenize_file, detokenize_frame, tokenize_file, tokenize_frame
from tests.envelope.conftest import CountingProvider

KEY = "pii"


@pytest.fixture
def provider(tmp_path: Path, master_key: bytes) -> LocalKeyProvider:
    local = LocalKeyProvider(tmp_path / "keyring", master_key)
    local.create_key(KEY)
    local.create_key("pii-derived", derived=True)
    return local


def _people() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3, 4],
        "email": ["a@x.org", "b@x.org", "a@x.org", None],
        "ssn": ["123-45-6789", "987-65-4321", "123-45-6789", "555-55-5555"],
        "age": [31, 42, 31, 57],
    })


def test_tokens_are_deterministic_joinable_and_hide_values(provider: LocalKeyProvider) -> None:
    counting = CountingProvider(provider)
    people, result = tokenize_frame(_people(), counting, key_name=KEY, context="ds", token_columns=["email", "ssn"])
    assert dict(counting.calls) == {"hmac": 1}  # one provider call per domain, never per value
    assert result.token_columns == ("email", "ssn") and result.key_version == 1 and result.rows == 4
    assert people.loc[0, "ssn"] == people.loc[2, "ssn"] != people.loc[1, "ssn"]
    assert people.loc[0, "ssn"].startswith("tok:v1:") and len(people.loc[0, "ssn"]) == len("tok:v1:") + 43
    assert pd.isna(people.loc[3, "email"])
    assert not people.astype(str).apply(lambda col: col.str.contains("123-45|@x.org")).any().any()
    assert people["age"].tolist() == [31, 42, 31, 57]

    orders = pd.DataFrame({"email": ["a@x.org", "b@x.org", "a@x.org"], "total": [10, 20, 30]})
    orders, _ = tokenize_frame(orders, provider, key_name=KEY, context="orders", token_columns=["email"])
    joined = people.merge(orders, on="email")
    assert sorted(joined.groupby("id")["total"].sum().to_dict().items()) == [(1, 40), (2, 20), (3, 40)]

    other_domain, _ = tokenize_frame(_people(), provider, key_name=KEY, context="ds", token_columns=["ssn"],
                                     domain="hr")
    assert set(other_domain["ssn"]).isdisjoint(people["ssn"])


def test_rotation_changes_tokens_and_says_so(provider: LocalKeyProvider) -> None:
    before, _ = tokenize_frame(_people(), provider, key_name=KEY, context="ds", token_columns=["ssn"])
    provider.rotate(KEY)
    after, result = tokenize_frame(_people(), provider, key_name=KEY, context="ds", token_columns=["ssn"])
    assert result.key_version == 2 and after.loc[0, "ssn"].startswith("tok:v2:")
    assert set(before["ssn"]).isdisjoint(after["ssn"])


@pytest.mark.parametrize("key", [KEY, "pii-derived"])
def test_encrypted_fields_round_trip_with_their_types(provider: LocalKeyProvider, key: str) -> None:
    frame = _people()
    sealed, result = tokenize_frame(frame, provider, key_name=key, context="ds", encrypt_columns=["ssn", "age"])
    assert result.encrypted_columns == ("ssn", "age")
    assert sealed.loc[0, "ssn"].startswith("vault:v1:") and sealed.loc[0, "ssn"] != sealed.loc[2, "ssn"]
    restored = detokenize_frame(sealed, provider, key_name=key, context="ds", encrypt_columns=["ssn", "age"])
    assert restored["ssn"].tolist() == frame["ssn"].tolist()
    assert restored["age"].tolist() == [31, 42, 31, 57]


def test_derived_key_binds_the_context(provider: LocalKeyProvider) -> None:
    sealed, _ = tokenize_frame(_people(), provider, key_name="pii-derived", context="ds-a", encrypt_columns=["ssn"])
    with pytest.raises(InvalidWrappedKeyError, match="wrong key or wrong context"):
        detokenize_frame(sealed, provider, key_name="pii-derived", context="ds-b", encrypt_columns=["ssn"])
    moved = sealed.rename(columns={"ssn": "email", "email": "ssn"})
    with pytest.raises(InvalidWrappedKeyError):
        detokenize_frame(moved, provider, key_name="pii-derived", context="ds-a", encrypt_columns=["email"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_round_trip(provider: LocalKeyProvider, tmp_path: Path, suffix: str) -> None:
    src, dst, back = (tmp_path / f"{name}{suffix}" for name in ("people", "tokenized", "restored"))
    frame = _people()
    if suffix == ".csv":
        frame.to_csv(src, index=False)
    else:
        frame.to_parquet(src, index=False)
    result = tokenize_file(src, dst, provider, key_name=KEY, context="ds", token_columns=["email"],
                           encrypt_columns=["ssn"])
    assert result.output_sha256 == sha256_file(dst)
    assert b"123-45-6789" not in dst.read_bytes() and b"a@x.org" not in dst.read_bytes()
    detokenize_file(dst, back, provider, key_name=KEY, context="ds", encrypt_columns=["ssn"])
    restored = pd.read_parquet(back) if suffix == ".parquet" else pd.read_csv(back)
    assert restored["ssn"].tolist() == frame["ssn"].tolist()
    assert restored["email"].iloc[0] == restored["email"].iloc[2] != restored["email"].iloc[1]


def test_bad_requests_name_the_cause(provider: LocalKeyProvider, tmp_path: Path) -> None:
    with pytest.raises(TokenizeError, match=r"columns not in the table: \['phone'\]"):
        tokenize_frame(_people(), provider, key_name=KEY, context="c", token_columns=["phone"])
    with pytest.raises(TokenizeError, match="both tokenized and encrypted"):
        tokenize_frame(_people(), provider, key_name=KEY, context="c", token_columns=["ssn"], encrypt_columns=["ssn"])
    with pytest.raises(TokenizeError, match="unsupported table format"):
        tokenize_file(tmp_path / "x.xlsx", tmp_path / "y.xlsx", provider, key_name=KEY, context="c",
                      token_columns=["ssn"])
