"""The scope catalog and built-in roles, read from the reviewable files in ``policies/``.

:func:`load_policy` returns a :class:`PolicySet`; it raises :class:`PolicyError`
(with file and line) when the files contradict SPEC R20-R23: unknown scopes,
include or inheritance cycles, a broken Viewer ⊆ Runner ⊆ Developer ⊆ Owner ladder.
No role holds anything that is not written in these files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import yaml

from orgauthz.domain import rules
from orgauthz.errors import PolicyError

WILDCARD: Final = "*"
WORKSPACE: Final = "workspace"
ORGANIZATION: Final = "organization"
LADDER: Final = ("Viewer", "Runner", "Developer", "Owner")

log = logging.getLogger(__name__)


def _installed_policy_dir() -> Path:
    """The package ``orgauthz.policies``: the top-level ``policies/`` of the checkout, installed
    with the package (pyproject.toml maps it), so a wheel and an editable install both find it."""
    directory = files("orgauthz.policies")
    assert isinstance(directory, Path), directory  # installed as files on disk, never zipped
    return directory


DEFAULT_POLICY_DIR: Final = _installed_policy_dir()


@dataclass(frozen=True)
class Scope:
    name: str
    description: str
    includes: tuple[str, ...] = ()
    prefect: str = ""  # the permission's title in Prefect's docs, where it publishes one
    origin: str = "prefect"  # "orgauthz" for an id Prefect lacks (R21)


def role_key(level: str, ref: str) -> str:
    """The role's name in Casbin's lines and in findings: ``role:<ref>`` for a workspace role,
    ``orgrole:<ref>`` for an organization role. Built-in names repeat across levels (Owner)."""
    return f"{'orgrole' if level == ORGANIZATION else 'role'}:{ref}"


@dataclass(frozen=True)
class RoleDef:
    """A role as written: its own scopes and the built-in role it inherits, if any.
    ``excludes`` takes permissions out of a ``*`` (Admin holds all but ``bypass:sso``, R24)."""

    name: str
    level: str  # WORKSPACE or ORGANIZATION
    description: str
    scopes: tuple[str, ...]
    inherits: str = ""
    builtin: bool = True
    excludes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return role_key(self.level, self.name)


@dataclass(frozen=True)
class ObjectKind:
    """A kind of object that can carry an access control list (R26, ``object_acls`` in
    scopes.yaml): its levels, lowest first, and the level governing each scope it governs."""

    name: str
    levels: tuple[str, ...]
    governs: dict[str, str]  # workspace scope -> the level that covers it
    delegates_to: str = ""  # R27: the kind whose ACL governs this one's, when the object names one

    def covering(self, level: str) -> tuple[str, ...]:
        """``level`` and every level above it (an entry at any of them covers ``level``)."""
        return self.levels[self.levels.index(level) :]

    def scopes_at(self, level: str) -> tuple[str, ...]:
        """The scopes an entry at ``level`` covers: those of ``level`` and every level below."""
        below = set(self.levels[: self.levels.index(level) + 1])
        return tuple(s for s, lv in self.governs.items() if lv in below)


class _LineLoader(yaml.SafeLoader):
    """Records the line of every mapping key so findings can point at it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
    # Items of a list value too (``scopes[2]``), so a finding can point at the very entry.
    for k, v in node.value:
        if hasattr(k, "value") and isinstance(v, yaml.SequenceNode):
            lines.update({f"{k.value}[{i}]": item.start_mark.line + 1 for i, item in enumerate(v.value)})
    mapping["__lines__"] = lines
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506  # SafeLoader subclass
    except FileNotFoundError:
        raise PolicyError("file is missing", file=str(path)) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise PolicyError(f"not valid YAML: {exc}", file=str(path), line=line) from None
    if not isinstance(data, dict):
        raise PolicyError("must be a YAML mapping", file=str(path), line=1)
    return data


@dataclass(frozen=True)
class PolicySet:
    """Everything read from ``policies/``; immutable, shared by engine, API and tools."""

    directory: Path
    model_text: str
    workspace_scopes: dict[str, Scope]
    organization_permissions: dict[str, Scope]
    workspace_roles: dict[str, RoleDef]
    organization_roles: dict[str, RoleDef]
    source_lines: dict[str, tuple[str, int]] = field(default_factory=dict, compare=False)
    # R21: an id of the previous catalog -> the id it became; accepted for one release.
    renamed: dict[str, str] = field(default_factory=dict)
    # Where ``roles.yaml`` still names a renamed id: (role key, old id); ``policy lint`` warns.
    deprecated_uses: tuple[tuple[str, str], ...] = ()
    # R26, R27: the kinds of object that can carry an access control list, by name.
    object_kinds: dict[str, ObjectKind] = field(default_factory=dict)

    @cached_property
    def all_scopes(self) -> frozenset[str]:
        return frozenset(self.workspace_scopes) | frozenset(self.organization_permissions)

    def role(self, level: str, name: str) -> RoleDef | None:
        """The built-in role ``name`` of ``level`` (Owner is one at each level), or None."""
        return (self.workspace_roles if level == WORKSPACE else self.organization_roles).get(name)

    def builtin_roles(self, level: str) -> list[RoleDef]:
        return list((self.workspace_roles if level == WORKSPACE else self.organization_roles).values())

    def all_roles(self) -> list[RoleDef]:
        """Every built-in role: the workspace roles, then the organization roles."""
        return [*self.workspace_roles.values(), *self.organization_roles.values()]

    def builtin_names(self, level: str = "") -> frozenset[str]:
        """The built-in role names of ``level`` (empty: of both levels)."""
        levels = [level] if level else [WORKSPACE, ORGANIZATION]
        return frozenset(r.name for lv in levels for r in self.builtin_roles(lv))

    def current_id(self, name: str) -> str:
        """``name``, or the id it was renamed to (R21); a renamed id is logged once per process."""
        new = self.renamed.get(name)
        if new is None:
            return name
        _warn_renamed(name, new)
        return new

    def is_scope(self, level: str, name: str) -> bool:
        table = self.workspace_scopes if level == WORKSPACE else self.organization_permissions
        return name in table

    def expand_wildcard(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        if WILDCARD in scopes:
            return tuple(sorted(self.all_scopes))
        return scopes

    def held_scopes(self, role: RoleDef, custom: dict[str, RoleDef] | None = None) -> frozenset[str]:
        """Scopes the role holds, its own plus those of the role it inherits (not includes)."""
        seen: set[str] = set()
        held: set[str] = set()
        current: RoleDef | None = role
        while current is not None and current.name not in seen:
            seen.add(current.name)
            held.update(set(self.expand_wildcard(current.scopes)) - set(current.excludes))
            parent = current.inherits
            current = (custom or {}).get(parent) or self.role(current.level, parent) if parent else None
        return frozenset(held)

    @cached_property
    def includes_closure(self) -> dict[str, frozenset[str]]:
        """For each scope, every scope it grants, itself included (R21)."""
        table = {**self.workspace_scopes, **self.organization_permissions}
        closure: dict[str, frozenset[str]] = {}

        def visit(name: str) -> frozenset[str]:
            if name not in closure:
                out = {name}
                for inc in table[name].includes:
                    out |= visit(inc)
                closure[name] = frozenset(out)
            return closure[name]

        for name in table:
            visit(name)
        return closure

    @cached_property
    def included_by(self) -> dict[str, frozenset[str]]:
        """For each scope, every scope that grants it, itself included."""
        inverse: dict[str, set[str]] = {name: set() for name in self.includes_closure}
        for name, granted in self.includes_closure.items():
            for g in granted:
                inverse[g].add(name)
        return {k: frozenset(v) for k, v in inverse.items()}

    def effective_scopes(self, held: frozenset[str] | set[str]) -> frozenset[str]:
        out: set[str] = set()
        for scope in held:
            out |= self.includes_closure.get(scope, frozenset())
        return frozenset(out)


_warned: set[str] = set()


def _warn_renamed(old: str, new: str) -> None:
    if old not in _warned:
        _warned.add(old)
        log.warning("deprecated scope id %r: it is %r now (R21); accepted until the next release", old, new)


def _scopes(data: dict[str, Any], key: str, path: Path) -> tuple[dict[str, Scope], dict[str, int]]:
    section = data.get(key) or {}
    lines = section.pop("__lines__", {}) if isinstance(section, dict) else {}
    if not isinstance(section, dict):
        raise PolicyError(f"{key} must be a mapping", file=str(path), line=data["__lines__"].get(key, 0))
    out: dict[str, Scope] = {}
    for name, body in section.items():
        body = body or {}
        includes = tuple(body.get("includes") or ())
        out[name] = Scope(
            name=name,
            description=str(body.get("description", "")),
            includes=includes,
            prefect=str(body.get("prefect") or ""),
            origin=str(body.get("origin") or "prefect"),
        )
        item_lines = body.get("__lines__", {})
        for i, inc in enumerate(includes):
            lines[f"{name}/includes:{inc}"] = item_lines.get(f"includes[{i}]", lines.get(name, 0))
    return out, lines


def _renamed(data: dict[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    section = dict(data.get("renamed") or {})
    lines = section.pop("__lines__", {})
    return {str(old): str(new) for old, new in section.items()}, lines


def _object_kinds(data: dict[str, Any], path: Path) -> tuple[dict[str, ObjectKind], dict[str, int]]:
    """``object_acls`` of scopes.yaml. Malformed parts raise PolicyError at their line."""
    section = dict(data.get("object_acls") or {})
    lines = section.pop("__lines__", {})
    out: dict[str, ObjectKind] = {}
    for name, body in section.items():
        at = lines.get(name, 0)
        if not isinstance(body, dict) or not isinstance(body.get("levels"), dict) or len(body["levels"]) < 2:
            raise PolicyError(
                f"object kind {name!r}: give its levels, lowest first (at least two)", file=str(path), line=at
            )
        levels = {k: v for k, v in body["levels"].items() if k != "__lines__"}
        governs: dict[str, str] = {}
        for level, scopes in levels.items():
            if not isinstance(scopes, list):
                raise PolicyError(f"object kind {name!r}: level {level!r} must list scopes", file=str(path), line=at)
            for scope in scopes:
                if scope in governs:
                    raise PolicyError(
                        f"object kind {name!r}: scope {scope!r} is governed by levels {governs[scope]!r} and {level!r}",
                        file=str(path),
                        line=at,
                    )
                governs[str(scope)] = str(level)
        out[name] = ObjectKind(name, tuple(levels), governs, str(body.get("delegates_to") or ""))
    return out, lines


def _roles(
    data: dict[str, Any], key: str, level: str, renamed: dict[str, str], deprecated: list[tuple[str, str]]
) -> tuple[dict[str, RoleDef], dict[str, int]]:
    section = dict(data.get(key) or {})
    lines = section.pop("__lines__", {})
    out: dict[str, RoleDef] = {}
    for name, body in section.items():
        body = body or {}
        item_lines = body.get("__lines__", {})
        for i, s in enumerate(body.get("scopes") or ()):
            lines.setdefault(f"{name}/scope:{s}", item_lines.get(f"scopes[{i}]", lines.get(name, 0)))
        if "inherits" in item_lines:
            lines[f"{name}/inherits"] = item_lines["inherits"]
        written = tuple(body.get("scopes") or ())
        deprecated.extend((role_key(level, name), s) for s in written if s in renamed)
        for s in written:
            if s in renamed:
                lines.setdefault(f"{name}/scope:{renamed[s]}", lines[f"{name}/scope:{s}"])
        out[name] = RoleDef(
            name=name,
            level=level,
            description=str(body.get("description", "")),
            scopes=tuple(renamed.get(s, s) for s in written),
            inherits=str(body.get("inherits") or ""),
            excludes=tuple(str(x) for x in body.get("except") or ()),
        )
        if "except" in item_lines:
            lines[f"{name}/except"] = item_lines["except"]
    return out, lines


def parse_policy(directory: Path) -> PolicySet:
    """Reads the files without judging them (``orgauthz policy lint`` judges)."""
    scopes_path, roles_path = directory / "scopes.yaml", directory / "roles.yaml"
    model_path = directory / "model.conf"
    try:
        model_text = model_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("file is missing", file=str(model_path)) from None
    scopes_data, roles_data = _read(scopes_path), _read(roles_path)
    ws_scopes, ws_lines = _scopes(scopes_data, "workspace_scopes", scopes_path)
    org_perms, org_lines = _scopes(scopes_data, "organization_permissions", scopes_path)
    renamed, ren_lines = _renamed(scopes_data)
    kinds, kind_lines = _object_kinds(scopes_data, scopes_path)
    deprecated: list[tuple[str, str]] = []
    ws_roles, wr_lines = _roles(roles_data, "workspace_roles", WORKSPACE, renamed, deprecated)
    org_roles, or_lines = _roles(roles_data, "organization_roles", ORGANIZATION, renamed, deprecated)
    source: dict[str, tuple[str, int]] = {}
    source.update({f"renamed:{k}": (str(scopes_path), v) for k, v in ren_lines.items()})
    source.update({f"kind:{k}": (str(scopes_path), v) for k, v in kind_lines.items()})
    for lines, path in ((ws_lines, scopes_path), (org_lines, scopes_path)):
        source.update({f"scope:{k}": (str(path), v) for k, v in lines.items()})
    for lines, level in ((wr_lines, WORKSPACE), (or_lines, ORGANIZATION)):
        source.update({role_key(level, k): (str(roles_path), v) for k, v in lines.items()})
    return PolicySet(
        directory=directory,
        model_text=model_text,
        workspace_scopes=ws_scopes,
        organization_permissions=org_perms,
        workspace_roles=ws_roles,
        organization_roles=org_roles,
        source_lines=source,
        renamed=renamed,
        deprecated_uses=tuple(deprecated),
        object_kinds=kinds,
    )


def policy_findings(policy: PolicySet) -> list[PolicyError]:
    """Every way the files break SPEC R11, R20-R23; empty when they are sound."""
    findings: list[PolicyError] = []

    def at(key: str, message: str) -> None:
        # The exact entry (``role:Viewer/scope:see_flows``) when known, else its role or scope.
        file, line = policy.source_lines.get(key) or policy.source_lines.get(key.split("/")[0], ("", 0))
        findings.append(PolicyError(message, file=file, line=line))

    table = {**policy.workspace_scopes, **policy.organization_permissions}
    overlap = set(policy.workspace_scopes) & set(policy.organization_permissions)
    for name in sorted(overlap):
        at(f"scope:{name}", f"scope {name!r} is both a workspace scope and an organization permission")
    for old, new in policy.renamed.items():
        if old in table:
            at(f"renamed:{old}", f"renamed id {old!r} is still in the catalog")
        elif new not in table:
            at(f"renamed:{old}", f"renamed id {old!r} names unknown scope {new!r}")
    for kind in policy.object_kinds.values():
        for governed in kind.governs:
            if governed not in policy.workspace_scopes:
                at(f"kind:{kind.name}", f"object kind {kind.name!r} governs unknown workspace scope {governed!r}")
        target = policy.object_kinds.get(kind.delegates_to) if kind.delegates_to else kind
        if target is None:
            at(f"kind:{kind.name}", f"object kind {kind.name!r} delegates to unknown kind {kind.delegates_to!r}")
        elif not set(kind.levels) <= set(target.levels):
            at(f"kind:{kind.name}", f"object kind {kind.name!r} has levels its delegate {target.name!r} lacks")
    for scope in table.values():
        if scope.origin not in ("prefect", "orgauthz"):
            at(f"scope:{scope.name}", f"scope {scope.name!r}: origin must be prefect or orgauthz")
        for inc in scope.includes:
            if inc not in table:
                at(f"scope:{scope.name}/includes:{inc}", f"scope {scope.name!r} includes unknown scope {inc!r}")
    # Include cycles: depth-first search with colours.
    state: dict[str, int] = {}

    def cyc(name: str, trail: list[str]) -> None:
        state[name] = 1
        for inc in table[name].includes:
            if inc not in table:
                continue
            if state.get(inc) == 1:
                at(f"scope:{name}/includes:{inc}", "scope includes form a cycle: " + " -> ".join([*trail, name, inc]))
            elif inc not in state:
                cyc(inc, [*trail, name])
        state[name] = 2

    for name in table:
        if name not in state:
            cyc(name, [])
    for role in policy.all_roles():
        allowed = policy.workspace_scopes if role.level == WORKSPACE else None
        for s in role.scopes:
            if s == WILDCARD:
                if role.level != ORGANIZATION or not rules.is_admin(role.name):
                    at(role.key, f"only the Owner and Admin roles may hold '*' ({role.name} does)")
                continue
            if s not in table:
                at(f"{role.key}/scope:{s}", f"role {role.name!r} names unknown scope {s!r}")
            elif allowed is not None and s not in allowed:
                at(f"{role.key}/scope:{s}", f"workspace role {role.name!r} holds organization permission {s!r}")
            elif role.level == ORGANIZATION and not rules.is_admin(role.name) and s in policy.workspace_scopes:
                at(f"{role.key}/scope:{s}", f"organization role {role.name!r} holds workspace scope {s!r}")
        for s in role.excludes:
            if s not in table:
                at(f"{role.key}/except", f"role {role.name!r} excepts unknown scope {s!r}")
        if role.excludes and WILDCARD not in role.scopes:
            at(f"{role.key}/except", f"role {role.name!r}: except applies to '*' only")
        if role.inherits and policy.role(role.level, role.inherits) is None:
            at(f"{role.key}/inherits", f"role {role.name!r} inherits unknown {role.level} role {role.inherits!r}")
    # Inheritance cycles.
    for role in policy.all_roles():
        seen, cur = [role.name], policy.role(role.level, role.inherits) if role.inherits else None
        while cur is not None:
            if cur.name in seen:
                at(f"{role.key}/inherits", "role inheritance forms a cycle: " + " -> ".join([*seen, cur.name]))
                break
            seen.append(cur.name)
            cur = policy.role(cur.level, cur.inherits) if cur.inherits else None
    roles_file = str(policy.directory / "roles.yaml")
    for name in (rules.OWNER, rules.ADMIN, rules.MEMBER):
        if policy.role(ORGANIZATION, name) is None:
            findings.append(PolicyError(f"built-in organization role {name!r} is missing", file=roles_file, line=1))
    for name in (*LADDER, "Worker"):
        if policy.role(WORKSPACE, name) is None:
            findings.append(PolicyError(f"built-in workspace role {name!r} is missing", file=roles_file, line=1))
    if not findings:
        # R20 ladder, on effective scopes (after inheritance and includes).
        eff = {n: policy.effective_scopes(policy.held_scopes(policy.workspace_roles[n])) for n in LADDER}
        for lower, upper in pairwise(LADDER):
            missing = sorted(eff[lower] - eff[upper])
            if missing:
                at(role_key(WORKSPACE, upper), f"R20: {upper} must hold everything {lower} holds; missing {missing}")
    return findings


def load_policy(directory: Path | str | None = None) -> PolicySet:
    """Parses and checks ``policies/``; raises the first :class:`PolicyError` found, including
    a ``model.conf`` the engine cannot evaluate (see :func:`orgauthz.engine.enforcer.check_model`)."""
    policy = parse_policy(Path(directory) if directory else DEFAULT_POLICY_DIR)
    findings = policy_findings(policy)
    if findings:
        raise findings[0]
    # Imported here: the engine builds on this module, and reading the files needs no Casbin.
    from orgauthz.engine.enforcer import check_model

    check_model(policy)
    return policy
