"""Small composable verification policies, in the style of sigstore-python's ``sigstore.verify.policy``.

Each policy looks at the :class:`SignedContents` of a signature that already passed the cryptographic
and file checks and returns a :class:`VerificationResult` whose ``reason`` names the binding at fault.
"""

from __future__ import annotations

from typing import Protocol

from pipeshield.signing._bindings import ModelBindings
from pipeshield.signing._results import SignedContents, VerificationResult


class Policy(Protocol):
    """Anything with ``check(contents) -> VerificationResult``."""

    def check(self, contents: SignedContents) -> VerificationResult: ...


class BindingsMatch:
    """The signed bindings satisfy ``expected`` (see :meth:`ModelBindings.mismatches` for the rules)."""

    def __init__(self, expected: ModelBindings) -> None:
        self.expected = expected

    def check(self, contents: SignedContents) -> VerificationResult:
        wrong = self.expected.mismatches(contents.bindings)
        if not wrong:
            return VerificationResult.success("bindings match")
        field = wrong[0]
        signed = getattr(contents.bindings, field)
        want = getattr(self.expected, field)
        if field in ("datasets", "gate_reports"):
            signed = sorted(a.uri + "@" + a.sha256[:12] for a in signed)
            want = sorted(a.uri + "@" + a.sha256[:12] for a in want)
        return VerificationResult.failure(
            "binding", f"binding {field!r} mismatch: the model was signed for {signed!r}, expected {want!r}",
            subject=field,
        )


class KeyVersionAtLeast:
    """The signature was made with key version ``minimum`` or later (e.g. after a compromise rotation)."""

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def check(self, contents: SignedContents) -> VerificationResult:
        if contents.key_version >= self.minimum:
            return VerificationResult.success(f"key version {contents.key_version} >= {self.minimum}")
        return VerificationResult.failure(
            "signature", f"signed with key {contents.key_name!r} v{contents.key_version}, "
                         f"policy requires v{self.minimum} or later", subject="key_version")


class AllOf:
    """Every policy passes; the first failure is returned."""

    def __init__(self, *policies: Policy) -> None:
        self.policies = policies

    def check(self, contents: SignedContents) -> VerificationResult:
        for policy in self.policies:
            result = policy.check(contents)
            if not result:
                return result
        return VerificationResult.success("all policies passed")
