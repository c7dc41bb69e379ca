"""The emulator's ACL engine against the matching and priority rules of vault-api.md §2.3-2.5.

(The same rules are exercised over HTTP, also against a real Vault, in tests/contract/.)"""

from __future__ import annotations

import pytest

from tests.vault_emulator._acl import ACL, PolicyError, parse_policy


def acl(*policies: str) -> ACL:
    return ACL([parse_policy(text) for text in policies])


def rule(pattern: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{pattern}" {{ capabilities = [{quoted}] }}\n'


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("secret/foo*", "secret/foobar", True),
    ("secret/bar/*", "secret/bar/zip/zap", True),
    ("secret/bar/*", "secret/bars/zip", False),
    ("secret/+/teamb", "secret/x/teamb", True),
    ("secret/+/teamb", "secret/x/y/teamb", False),
    ("secret/+/teamb", "secret/x/teambb", False),
    ("+/data/*", "kv/data/a/b", True),
    ("secret/+/team*", "secret/x/teamc/d", True),
    ("/secret/exact", "secret/exact", True),
    ("secret/exact", "secret/exact/more", False),
    ("*", "anything/at/all", True),
])
def test_glob_and_segment_matching(pattern: str, path: str, matches: bool) -> None:
    assert acl(rule(pattern, "read")).allows(path, "read") is matches


@pytest.mark.parametrize(("patterns", "path", "winner"), [
    # exact beats any wildcard
    (["secret/*", "secret/a"], "secret/a", "secret/a"),
    # 1: the later first wildcard wins ("secret/a*" over "secret/+")
    (["secret/+", "secret/a*"], "secret/ab", "secret/a*"),
    # 2: with the same first wildcard, non-prefix beats prefix
    (["secret/+/*", "secret/+/x"], "secret/a/x", "secret/+/x"),
    # 3: fewer "+" segments win
    (["secret/+/+/c", "secret/+/b/c"], "secret/a/b/c", "secret/+/b/c"),
    # 4: the longer pattern wins
    (["secret/+/b*", "secret/+/bc*"], "secret/a/bcd", "secret/+/bc*"),
    # 5: lexically larger wins as the last tie-break
    (["secret/+/a+x", "secret/+/a+y"], "secret/q/a+y", "secret/+/a+y"),
    # the longest plain prefix is the only prefix candidate
    (["secret/*", "secret/app/*"], "secret/app/db", "secret/app/*"),
])
def test_only_the_highest_priority_rule_applies(patterns: list[str], path: str, winner: str) -> None:
    policy = "".join(rule(p, "read") if p == winner else rule(p, "deny") for p in patterns)
    assert acl(policy).allows(path, "read")
    flipped = "".join(rule(p, "deny") if p == winner else rule(p, "read", "update") for p in patterns)
    assert not acl(flipped).allows(path, "read")


def test_capabilities_merge_per_pattern_and_deny_wins() -> None:
    merged = acl(rule("transit/keys/a", "read"), rule("transit/keys/a", "update"))
    assert merged.allows("transit/keys/a", "read") and merged.allows("transit/keys/a", "update")
    denied = acl(rule("transit/keys/a", "read", "sudo"), rule("transit/keys/a", "deny"))
    assert not denied.allows("transit/keys/a", "read")
    assert not denied.allows("transit/keys/a", "read", sudo=True)


def test_sudo_and_list_rules() -> None:
    rules = acl(rule("sys/auth/*", "update"), rule("sys/auth/k8s", "update", "sudo"), rule("transit/keys", "list"))
    assert not rules.allows("sys/auth/approle", "update", sudo=True)
    assert rules.allows("sys/auth/k8s", "update", sudo=True)
    assert rules.allows("transit/keys/", "list")  # LIST falls back to the exact rule without the slash
    assert not rules.allows("transit/keys/", "read")


def test_root_allows_everything_and_no_rule_denies() -> None:
    assert ACL([], root=True).allows("sys/raw/x", "delete", sudo=True)
    assert not ACL([]).allows("auth/token/lookup-self", "read")


def test_legacy_policy_keyword() -> None:
    rules = acl('path "secret/*" { policy = "write" }\npath "secret/ro" { policy = "read" }')
    assert rules.allows("secret/x", "create") and rules.allows("secret/ro", "list")
    assert not rules.allows("secret/ro", "update")


def test_json_policies_parse_like_hcl() -> None:
    rules = acl('{"path": {"kv/data/app/*": {"capabilities": ["read"]}}}')
    assert rules.allows("kv/data/app/db", "read") and not rules.allows("kv/data/app/db", "update")


@pytest.mark.parametrize(("text", "message"), [
    (rule("secret/+*", "read"), r"'\+\*' is forbidden"),
    (rule("secret/x", "fly"), 'invalid capability "fly"'),
    ('path "secret/x" { capabilities = ["read"]\n colour = "blue" }', 'invalid key "colour"'),
    ('path "secret/x" { capabilities = ["read"', None),
])
def test_invalid_policies_are_refused(text: str, message: str | None) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)
