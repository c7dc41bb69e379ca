"""The stage manifest: which identity each pipeline stage has and what it may do in Vault and MLflow."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pipeshield.errors import ManifestError, UnknownStageError
from pipeshield.stages import _schema, _yaml

DEFAULT_STAGES = ("validate", "train", "register", "deploy", "serve")
DEFAULT_TOKEN_TTL = 15 * 60
DEFAULT_TOKEN_MAX_TTL = 60 * 60
_UNITS = {"s": 1, "m": 60, "h": 3600}
#: Operations a grant brings with it: the key provider reads a key before encrypting with it.
IMPLIED = {"encrypt": frozenset({"read"})}


def _seconds(value: int | str) -> int:
    if isinstance(value, int):
        return value
    unit = value[-1] if value[-1] in _UNITS else "s"
    return int(value.rstrip("smh")) * _UNITS[unit]


@dataclasses.dataclass(frozen=True)
class VaultLayout:
    """Where things live in Vault, and how generated policies and roles are named."""

    policy_prefix: str = "pipeshield-"
    transit_mount: str = "transit"
    kv_mount: str = "secret"
    approle_mount: str = "approle"
    kubernetes_mount: str = "kubernetes"


@dataclasses.dataclass(frozen=True)
class AppRoleAuth:
    role: str
    secret_id_ttl: int = 0
    secret_id_num_uses: int = 0
    token_bound_cidrs: tuple[str, ...] = ()
    secret_id_bound_cidrs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class KubernetesAuth:
    role: str
    service_account: str
    namespace: str
    audience: str | None = None


@dataclasses.dataclass(frozen=True)
class Stage:
    """One pipeline stage: its identity and its grants."""

    name: str
    policy: str
    queue: str
    description: str = ""
    operators: tuple[str, ...] = ()
    approle: AppRoleAuth | None = None
    kubernetes: KubernetesAuth | None = None
    token_ttl: int = DEFAULT_TOKEN_TTL
    token_max_ttl: int = DEFAULT_TOKEN_MAX_TTL
    transit: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    kv: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    vault_paths: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    mlflow: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def allows(self, operation: str, key: str) -> bool:
        """Whether Transit ``operation`` on ``key`` is granted, directly or implied (exact key names only)."""
        granted = self.transit.get(key, frozenset())
        return operation in granted or any(operation in IMPLIED.get(g, ()) for g in granted)

    def operations(self) -> frozenset[str]:
        """Every Transit operation this stage may perform on some key."""
        return frozenset().union(*self.transit.values()) if self.transit else frozenset()


@dataclasses.dataclass(frozen=True)
class StageManifest:
    """A validated manifest. Build it with :func:`load_manifest`."""

    source: str
    vault: VaultLayout
    namespace: str
    stages: Mapping[str, Stage]
    lines: _yaml.LineMap = dataclasses.field(repr=False, compare=False)

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise UnknownStageError(name, sorted(self.stages)) from None

    def stage_for_operator(self, class_names: Iterable[str]) -> str | None:
        """The stage that claims one of ``class_names`` (an operator class and its bases, most derived first)."""
        for class_name in class_names:
            for stage in self.stages.values():
                if class_name in stage.operators:
                    return stage.name
        return None

    def line_of(self, *path: str | int) -> int:
        return self.lines.line(path)


def default_manifest_path() -> Path:
    """The manifest shipped with pipeshield (covers every pipeshield operator)."""
    return Path(str(resources.files("pipeshield.stages") / "default-manifest.yaml"))


def load_manifest(path: str | os.PathLike[str] | None = None) -> StageManifest:
    """Load and validate a manifest file (default: the shipped one). Raises :class:`ManifestError`."""
    target = Path(path) if path is not None else default_manifest_path()
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(str(target), 1, "", f"cannot read the manifest: {exc.__class__.__name__}") from None
    return parse_manifest(text, str(target))


def parse_manifest(text: str, source: str = "<manifest>") -> StageManifest:
    """Validate manifest text against the schema and the cross-stage rules."""
    document, lines = _yaml.load(text, source)
    _schema.validate(document, lines, source)
    vault = VaultLayout(**document.get("vault", {}))
    namespace = document.get("kubernetes", {}).get("namespace", "airflow")
    stages = {
        name: _stage(name, body, vault, namespace, lines, source) for name, body in document["stages"].items()
    }
    _check_operators_unique(stages, lines, source)
    return StageManifest(source, vault, namespace, stages, lines)


def _stage(name: str, body: dict[str, Any], vault: VaultLayout, namespace: str,
           lines: _yaml.LineMap, source: str) -> Stage:
    default_name = f"{vault.policy_prefix}{name}"
    where = ("stages", name)
    auth = body["auth"]
    approle = None
    if "approle" in auth:
        spec = auth["approle"]
        approle = AppRoleAuth(
            role=spec.get("role", default_name),
            secret_id_ttl=_seconds(spec.get("secret_id_ttl", 0)),
            secret_id_num_uses=spec.get("secret_id_num_uses", 0),
            token_bound_cidrs=tuple(spec.get("token_bound_cidrs", ())),
            secret_id_bound_cidrs=tuple(spec.get("secret_id_bound_cidrs", ())),
        )
    kubernetes = None
    if "kubernetes" in auth:
        spec = auth["kubernetes"]
        kubernetes = KubernetesAuth(
            role=spec.get("role", default_name),
            service_account=spec.get("service_account", default_name),
            namespace=spec.get("namespace", namespace),
            audience=spec.get("audience"),
        )
    ttl = _seconds(body.get("token_ttl", DEFAULT_TOKEN_TTL))
    max_ttl = _seconds(body.get("token_max_ttl", max(DEFAULT_TOKEN_MAX_TTL, ttl)))
    if ttl > max_ttl:
        raise ManifestError(source, lines.line((*where, "token_ttl")), _yaml.field_name((*where, "token_ttl")),
                            f"token_ttl ({ttl}s) is longer than token_max_ttl ({max_ttl}s)")
    grants = {field: {k: frozenset(v) for k, v in body.get(field, {}).items()}
              for field in ("transit", "kv", "vault_paths")}
    if not any(grants.values()):
        raise ManifestError(source, lines.line(where), _yaml.field_name(where),
                            "empty policy: the stage grants nothing in Vault (add transit, kv or vault_paths)")
    return Stage(
        name=name,
        policy=default_name,
        queue=body.get("queue", name),
        description=body.get("description", ""),
        operators=tuple(body.get("operators", ())),
        approle=approle,
        kubernetes=kubernetes,
        token_ttl=ttl,
        token_max_ttl=max_ttl,
        mlflow=dict(body.get("mlflow", {})),
        **grants,
    )


def _check_operators_unique(stages: Mapping[str, Stage], lines: _yaml.LineMap, source: str) -> None:
    owner: dict[str, str] = {}
    for stage in stages.values():
        for index, operator in enumerate(stage.operators):
            if operator in owner:
                path = ("stages", stage.name, "operators", index)
                raise ManifestError(source, lines.line(path), _yaml.field_name(path),
                                    f"operator {operator!r} is already claimed by stage {owner[operator]!r}")
            owner[operator] = stage.name
