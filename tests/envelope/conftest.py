"""Fixtures for envelope tests: a real local keyring and a provider that counts the calls made to it."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeshield.keys import DataKey, KeyInfo, KeyProvider, KeyType, LocalKeyProvider, Signature

KEY = "pipeshield-data"
CHUNK = 1 << 16  # the smallest chunk size keeps multi-chunk tests small


class CountingProvider(KeyProvider):
    """Delegates every call to a real provider and counts calls by method name."""

    name = "counting"

    def __init__(self, inner: KeyProvider) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()

    def _count(self, method: str) -> None:
        self.calls[method] += 1

    def create_key(self, name: str, key_type: KeyType = KeyType.AES256_GCM96, *, derived: bool = False) -> KeyInfo:
        self._count("create_key")
        return self.inner.create_key(name, key_type, derived=derived)

    def key_info(self, name: str) -> KeyInfo:
        self._count("key_info")
        return self.inner.key_info(name)

    def list_keys(self) -> list[str]:
        self._count("list_keys")
        return self.inner.list_keys()

    def rotate(self, name: str) -> KeyInfo:
        self._count("rotate")
        return self.inner.rotate(name)

    def set_min_decryption_version(self, name: str, version: int) -> KeyInfo:
        self._count("set_min_decryption_version")
        return self.inner.set_min_decryption_version(name, version)

    def generate_data_key(self, name: str, *, context: bytes | None = None) -> DataKey:
        self._count("generate_data_key")
        return self.inner.generate_data_key(name, context=context)

    def unwrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> bytes:
        self._count("unwrap")
        return self.inner.unwrap(name, wrapped, context=context)

    def rewrap(self, name: str, wrapped: str, *, context: bytes | None = None) -> str:
        self._count("rewrap")
        return self.inner.rewrap(name, wrapped, context=context)

    def encrypt(self, name: str, plaintext: bytes, *, context: bytes | None = None) -> str:
        self._count("encrypt")
        return self.inner.encrypt(name, plaintext, context=context)

    def hmac(self, name: str, data: bytes) -> str:
        self._count("hmac")
        return self.inner.hmac(name, data)

    def sign_digest(self, name: str, digest: bytes) -> Signature:
        self._count("sign_digest")
        return self.inner.sign_digest(name, digest)

    def verify_digest(self, name: str, digest: bytes, signature: str) -> bool:
        self._count("verify_digest")
        return self.inner.verify_digest(name, digest, signature)

    def public_key_pem(self, name: str, version: int | None = None) -> str:
        self._count("public_key_pem")
        return self.inner.public_key_pem(name, version)


@pytest.fixture
def provider(tmp_path: Path, master_key: bytes) -> Iterator[LocalKeyProvider]:
    with LocalKeyProvider(tmp_path / "keyring", master_key) as local:
        local.create_key(KEY)
        yield local


@pytest.fixture
def counting(provider: LocalKeyProvider) -> CountingProvider:
    return CountingProvider(provider)
