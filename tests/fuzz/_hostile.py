"""Shared pieces of the fuzz targets: byte mutations, JSON values, and a watchdog against hangs."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PIPESHIELD_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
HANG_SECONDS = 20.0

MUTATION = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=1, max_value=255),
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def mutate(blob: bytes, kind: str, where: int, value: int) -> bytes:
    """One byte-level mutation of ``blob``."""
    if not blob:
        return bytes([value])
    at = where % len(blob)
    if kind == "flip":
        return blob[:at] + bytes([blob[at] ^ value]) + blob[at + 1:]
    if kind == "insert":
        return blob[:at] + bytes([value]) * value + blob[at:]
    if kind == "delete":
        return blob[:at] + blob[at + value:]
    if kind == "truncate":
        return blob[:at]
    return blob[:at] + blob[at: at + value * 97] + blob[at:]


def replace_at(doc: object, path: list[int], value: object) -> object:
    """``doc`` with the node chosen by ``path`` (indices into dict items / list elements) replaced by ``value``."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    if isinstance(doc, dict):
        keys = sorted(doc)
        key = keys[path[0] % len(keys)]
        return {**doc, key: replace_at(doc[key], path[1:], value)}
    index = path[0] % len(doc)
    return [*doc[:index], replace_at(doc[index], path[1:], value), *doc[index + 1:]]


class Hang(BaseException):
    """Raised by :func:`watchdog` (a BaseException, so no ``except Exception`` in the code under test hides it)."""


@contextlib.contextmanager
def watchdog(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Fail the example if the block runs longer than ``seconds`` (a hang, not a slow machine)."""

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
