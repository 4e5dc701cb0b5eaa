"""``orgauthz policy diff BASE [HEAD]``: what a change to ``policies/`` grants and takes away.

BASE and HEAD are git refs (``origin/main``, a commit) or directories; HEAD defaults to
``policies/`` as it is in the working tree. For every built-in role the report lists the
*effective* scopes added and removed: after inheritance (a scope added to Viewer is a grant
to Runner, Developer and Owner too) and after includes (a scope that starts including
another grants it to every role holding it). It also lists catalog changes, the custom
roles of the policy test fixtures (and, with ``--database-url``, of a store) that change
through inheritance, and, when ``model.conf`` changed, the decisions that changed on a
probe organization.

Exit codes: 0 nothing granted (no change, or only removals); 1 something granted;
2 a side cannot be read or does not lint.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from orgauthz.domain import rules
from orgauthz.domain.policy import (
    ORGANIZATION,
    WORKSPACE,
    PolicySet,
    RoleDef,
    parse_policy,
    policy_findings,
    role_key,
)
from orgauthz.errors import PolicyError
from orgauthz.tools.policy_lint import display_path

POLICY_FILES = ("model.conf", "scopes.yaml", "roles.yaml")


class DiffError(Exception):
    """A side of the diff cannot be read or does not lint."""


# -- reading a side ------------------------------------------------------------------------


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603, S607  # git from PATH, fixed arguments
    if done.returncode != 0:
        raise DiffError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def materialize(spec: str, policy_path: str, into: Path) -> tuple[Path, str]:
    """The policies directory named by ``spec`` (directory or git ref) and a label for it."""
    candidate = Path(spec)
    if candidate.is_dir():
        if (candidate / "roles.yaml").is_file():
            return candidate, display_path(candidate)
        if (candidate / policy_path / "roles.yaml").is_file():
            return candidate / policy_path, display_path(candidate / policy_path)
        raise DiffError(f"{spec}: no roles.yaml here or in {policy_path}/")
    top = Path(_git("rev-parse", "--show-toplevel").strip())
    commit = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", cwd=top).strip()
    into.mkdir(parents=True, exist_ok=True)
    listed = _git("ls-tree", "-r", "--name-only", commit, f"{policy_path}/", cwd=top).splitlines()
    if f"{policy_path}/roles.yaml" not in listed:
        raise DiffError(f"{spec}: no {policy_path}/roles.yaml in that commit")
    for name in listed:
        rel = name[len(policy_path) + 1 :]
        if rel in POLICY_FILES or (rel.startswith("tests/") and rel.endswith((".yaml", ".yml"))):
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_git("show", f"{commit}:{name}", cwd=top), encoding="utf-8")
    return into, f"{spec} ({commit[:12]})"


def read_side(directory: Path, label: str, *, base: bool = False) -> PolicySet:
    """The policies of one side. The base may lack a built-in role added since (the Owner
    organization role, R24): the diff shows it as a new role."""
    try:
        policy = parse_policy(directory)
    except PolicyError as exc:
        raise DiffError(f"{label}: {exc}") from None
    findings = policy_findings(policy)
    if base:
        findings = [f for f in findings if not str(f).endswith("is missing")]
    if findings:
        raise DiffError(f"{label} does not lint (run `orgauthz policy lint`): {findings[0]}")
    return policy


# -- comparing -------------------------------------------------------------------------------


def effective(policy: PolicySet, role: RoleDef, custom: dict[str, RoleDef] | None = None) -> frozenset[str]:
    return policy.effective_scopes(policy.held_scopes(role, custom))


@dataclass
class RoleChange:
    role: str
    level: str
    added: list[str]
    removed: list[str]
    status: str = ""  # "new role", "role removed" or ""
    through: dict[str, str] = field(default_factory=dict)  # scope -> the ancestor that gained/lost it first


@dataclass
class CustomChange:
    role: str
    where: str
    inherits: str
    added: list[str]
    removed: list[str]


@dataclass
class Diff:
    base_label: str
    head_label: str
    roles: list[RoleChange] = field(default_factory=list)
    catalog: list[str] = field(default_factory=list)
    custom: list[CustomChange] = field(default_factory=list)
    model_changed: bool = False
    model_changes: list[str] = field(default_factory=list)  # probe decisions that changed
    model_grants: bool = False

    @property
    def granted(self) -> bool:
        return any(r.added for r in self.roles) or any(c.added for c in self.custom) or self.model_grants

    @property
    def removed(self) -> bool:
        return any(r.removed for r in self.roles) or any(c.removed for c in self.custom)

    @property
    def changed_keys(self) -> list[str]:
        """Changed built-in roles a custom role may inherit, as role keys (never an organization
        Owner or Admin: R11, R22, the importer refuses it)."""
        return [
            role_key(r.level, r.role)
            for r in self.roles
            if (r.added or r.removed) and not (r.level == ORGANIZATION and rules.is_admin(r.role))
        ]

    @property
    def changed_builtins(self) -> list[str]:
        """The names of :attr:`changed_keys`."""
        return list(dict.fromkeys(key.partition(":")[2] for key in self.changed_keys))


def compare(base: PolicySet, head: PolicySet, base_label: str, head_label: str) -> Diff:
    diff = Diff(base_label, head_label)
    roles_b = {r.key: r for r in base.all_roles()}
    roles_h = {r.key: r for r in head.all_roles()}
    keys = list(roles_b) + [k for k in roles_h if k not in roles_b]
    eff_b = {k: effective(base, r) for k, r in roles_b.items()}
    eff_h = {k: effective(head, r) for k, r in roles_h.items()}
    for key in keys:
        before, after = eff_b.get(key, frozenset()), eff_h.get(key, frozenset())
        status = "new role" if key not in roles_b else ("role removed" if key not in roles_h else "")
        role = roles_h.get(key) or roles_b[key]
        change = RoleChange(role.name, role.level, sorted(after - before), sorted(before - after), status)
        for scope in change.added + change.removed:
            change.through[scope] = _origin(head if scope in after else base, role, scope, eff_b, eff_h)
        if change.added or change.removed or status:
            diff.roles.append(change)
    diff.catalog = _catalog(base, head)
    diff.model_changed = _model_text(base) != _model_text(head)
    if diff.model_changed:
        diff.model_changes, diff.model_grants = _probe_changes(base, head)
    return diff


def _origin(
    policy: PolicySet, role: RoleDef, scope: str, eff_b: dict[str, frozenset[str]], eff_h: dict[str, frozenset[str]]
) -> str:
    """The highest ancestor of ``role`` whose change in ``scope`` it merely inherits ("" if its own).
    ``eff_b`` and ``eff_h`` are keyed by role key."""
    origin, current = "", policy.role(role.level, role.name)
    gained = scope in eff_h.get(role.key, frozenset())
    seen = {role.name}
    while current is not None and current.inherits and current.inherits not in seen:
        parent = role_key(role.level, current.inherits)
        seen.add(current.inherits)
        changed = (scope in eff_h.get(parent, frozenset())) != (scope in eff_b.get(parent, frozenset()))
        if not changed or (scope in eff_h.get(parent, frozenset())) != gained:
            break
        origin, current = current.inherits, policy.role(role.level, current.inherits)
    return origin


def _catalog(base: PolicySet, head: PolicySet) -> list[str]:
    out: list[str] = []
    for kind, b, h in (
        ("workspace scope", base.workspace_scopes, head.workspace_scopes),
        ("organization permission", base.organization_permissions, head.organization_permissions),
    ):
        for name in sorted(set(h) - set(b)):
            out.append(f"+ {kind} {name}: {h[name].description}")
        for name in sorted(set(b) - set(h)):
            out.append(f"- {kind} {name}")
        for name in sorted(set(b) & set(h)):
            plus = sorted(set(h[name].includes) - set(b[name].includes))
            minus = sorted(set(b[name].includes) - set(h[name].includes))
            if plus or minus:
                parts = [f"+{s}" for s in plus] + [f"-{s}" for s in minus]
                out.append(f"~ {name} includes {' '.join(parts)}")
    for was in base.all_roles():
        now = head.role(was.level, was.name)
        if now is not None and was.inherits != now.inherits:
            out.append(
                f"~ {was.level} role {was.name} inherits {was.inherits or '(nothing)'} -> {now.inherits or '(nothing)'}"
            )
    return out


def _model_text(policy: PolicySet) -> str:
    """The model without comments and blank lines: a comment edit is no change."""
    lines = (line.split("#", 1)[0].strip() for line in policy.model_text.splitlines())
    return "\n".join(line for line in lines if line)


def _probe_changes(base: PolicySet, head: PolicySet) -> tuple[list[str], bool]:
    """Decisions on the lint probe organization that differ between the two models."""
    from orgauthz.domain import lines as L
    from orgauthz.engine.enforcer import new_enforcer
    from orgauthz.tools.policy_lint import PROBE_ORG, probe_facts

    org_roles, grants, defaults = probe_facts()

    def decisions(policy: PolicySet) -> set[tuple[str, str, str]]:
        snap = L.OrgSnapshot(
            org_id=PROBE_ORG,
            revision=1,
            workspaces=defaults,
            members={s[5:]: r for s, r in org_roles.items() if s.startswith("user:")},
            service_accounts={s[16:]: r for s, r in org_roles.items() if s.startswith("service_account:")},
            grants=list(grants),
        )
        enforcer = new_enforcer(policy.model_text, L.all_lines(policy, [snap]))
        org_dom = L.org_domain(PROBE_ORG)
        # A model before object ACLs asks (sub, org, dom, obj); since, also res ("": no object).
        no_object = ("",) * (len(enforcer.model.model["r"]["r"].tokens) - 4)
        out = set()
        for subject in [*org_roles, "user:outsider"]:
            for dom, catalog in (
                (org_dom, policy.organization_permissions),
                *((L.ws_domain(ws), policy.workspace_scopes) for ws in defaults),
            ):
                out |= {(subject, dom, s) for s in catalog if enforcer.enforce(subject, org_dom, dom, s, *no_object)}
        return out

    try:
        before, after = decisions(base), decisions(head)
    except Exception as exc:  # Casbin raises whatever the matcher's evaluation raises
        return [f"the head model cannot be evaluated: {type(exc).__name__}: {exc}"], True
    lines = [f"+ {s} may now use {scope} in {d}" for s, d, scope in sorted(after - before)]
    lines += [f"- {s} may no longer use {scope} in {d}" for s, d, scope in sorted(before - after)]
    return lines, bool(after - before)


# -- custom roles --------------------------------------------------------------------------


def fixture_custom_roles(directory: Path) -> Iterator[tuple[str, RoleDef]]:
    """Custom roles of the policy test fixtures in ``directory/tests``: (file, role)."""
    for path in sorted((directory / "tests").glob("*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        orgs = data.get("organizations") or ([data["organization"]] if data.get("organization") else [])
        for org in orgs:
            for raw in (org or {}).get("custom_roles") or []:
                yield display_path(path), _custom_def(raw)


def _custom_def(raw: dict[str, Any]) -> RoleDef:
    return RoleDef(
        name=str(raw.get("id", "")),
        level=str(raw.get("level", WORKSPACE)),
        description=str(raw.get("name", "")),
        scopes=tuple(raw.get("scopes") or ()),
        inherits=str(raw.get("inherits") or ""),
        builtin=False,
    )


def store_custom_roles(database_url: str, inherits: list[str]) -> Iterator[tuple[str, RoleDef]]:
    """Custom roles in a store that inherit one of ``inherits``: (organization, role)."""
    from sqlalchemy import select

    from orgauthz.store.db import open_store
    from orgauthz.store.models import CustomRole
    from orgauthz.store.snapshots import custom_role_def

    db = open_store(database_url)
    try:
        with db.read() as s:
            rows = list(
                s.scalars(
                    select(CustomRole)
                    .where(CustomRole.inherits.in_(inherits))
                    .order_by(CustomRole.org_id, CustomRole.id)
                )
            )
            found = [(f"organization {r.org_id}", custom_role_def(r)) for r in rows]
    finally:
        db.dispose()
    yield from found


def custom_changes(
    base: PolicySet, head: PolicySet, roles: Iterator[tuple[str, RoleDef]], changed: list[str]
) -> list[CustomChange]:
    out: list[CustomChange] = []
    for where, role in roles:
        if not role.inherits or role_key(role.level, role.inherits) not in changed:
            continue
        before = effective(base, role) if base.role(role.level, role.inherits) else frozenset()
        after = effective(head, role) if head.role(role.level, role.inherits) else frozenset()
        if before != after:
            out.append(CustomChange(role.name, where, role.inherits, sorted(after - before), sorted(before - after)))
    return out


# -- output ---------------------------------------------------------------------------------


def _scopes(names: list[str], change: RoleChange, sign: str) -> str:
    return ", ".join(f"{sign}{n}" + (f" (via {change.through[n]})" if change.through.get(n) else "") for n in names)


def render_text(diff: Diff) -> str:
    out = [f"policy diff {diff.base_label} -> {diff.head_label}", ""]
    out.append("Built-in roles (effective scopes, after inheritance and includes):")
    if not diff.roles:
        out.append("  no change")
    for c in diff.roles:
        head = f"  {c.role} ({c.level} role{', ' + c.status if c.status else ''})"
        out.append(head)
        if c.added:
            out.append(f"    granted: {_scopes(c.added, c, '+')}")
        if c.removed:
            out.append(f"    removed: {_scopes(c.removed, c, '-')}")
    if diff.catalog:
        out += ["", "Catalog (scopes.yaml, inheritance):", *(f"  {line}" for line in diff.catalog)]
    out += ["", "Custom roles inheriting a changed built-in role:"]
    if diff.custom:
        for cc in diff.custom:
            parts = [f"+{s}" for s in cc.added] + [f"-{s}" for s in cc.removed]
            out.append(f"  {cc.role} ({cc.where}, inherits {cc.inherits}): {' '.join(parts)}")
    else:
        out.append("  none among the policy test fixtures")
    if diff.changed_builtins:
        out.append(
            f"  Custom roles live in the store: every custom role inheriting {', '.join(diff.changed_builtins)} "
            "follows the change above (R22); --database-url lists them."
        )
    if diff.model_changed:
        out += ["", "model.conf changed; decisions on the probe organization:"]
        out += [f"  {line}" for line in diff.model_changes] or ["  no decision changed"]
    out += ["", _verdict(diff)]
    return "\n".join(out) + "\n"


def render_markdown(diff: Diff) -> str:
    icon = "⚠️" if diff.granted else "✅"
    out = [f"### {icon} Policy diff: `{diff.base_label}` → `{diff.head_label}`", "", f"**{_verdict(diff)}**", ""]
    if diff.roles:
        out += ["| Role | Level | Granted | Removed |", "|---|---|---|---|"]
        for c in diff.roles:
            name = f"{c.role} ({c.status})" if c.status else c.role
            added = "<br>".join(f"`{s}`" + (f" via {c.through[s]}" if c.through.get(s) else "") for s in c.added)
            removed = "<br>".join(f"`{s}`" + (f" via {c.through[s]}" if c.through.get(s) else "") for s in c.removed)
            out.append(f"| **{name}** | {c.level} | {added or '—'} | {removed or '—'} |")
        out.append("")
    else:
        out += ["No built-in role's effective scopes change.", ""]
    if diff.catalog:
        out += [
            "<details><summary>Catalog changes</summary>",
            "",
            "```diff",
            *diff.catalog,
            "```",
            "",
            "</details>",
            "",
        ]
    if diff.custom:
        out += ["Custom roles inheriting a changed built-in role:", ""]
        for cc in diff.custom:
            parts = [f"+`{s}`" for s in cc.added] + [f"-`{s}`" for s in cc.removed]
            out.append(f"- `{cc.role}` ({cc.where}, inherits {cc.inherits}): {' '.join(parts)}")
        out.append("")
    if diff.changed_builtins:
        out += [
            f"Custom roles in the store inheriting {', '.join(diff.changed_builtins)} follow these changes (R22).",
            "",
        ]
    if diff.model_changed:
        out += [
            "`model.conf` changed. Decisions that changed on the probe organization:",
            "",
            "```diff",
            *(diff.model_changes or ["(none)"]),
            "```",
            "",
        ]
    return "\n".join(out)


def _verdict(diff: Diff) -> str:
    if diff.granted:
        return "GRANTS ACCESS: at least one role or decision gains a scope (exit 1)"
    if diff.removed:
        return "Removes access only: nothing is granted (exit 0)"
    return "No effective change: nothing is granted or removed (exit 0)"


def run_diff(
    base: str, head: str, *, policy_path: str = "policies", fmt: str = "text", database_url: str = "", out: TextIO
) -> int:
    """Prints the report; returns the exit code (0 nothing granted, 1 granted, 2 error)."""
    import sys

    from orgauthz.tools.policy_cli import default_policy_dir

    with tempfile.TemporaryDirectory(prefix="orgauthz-policy-diff-") as tmp:
        try:
            base_dir, base_label = materialize(base, policy_path, Path(tmp) / "base")
            if head:
                head_dir, head_label = materialize(head, policy_path, Path(tmp) / "head")
            else:
                head_dir = default_policy_dir()
                head_label = f"{display_path(head_dir)} (working tree)"
            base_policy = read_side(base_dir, base_label, base=True)
            head_policy = read_side(head_dir, head_label)
        except DiffError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        diff = compare(base_policy, head_policy, base_label, head_label)
        changed = diff.changed_keys
        diff.custom = custom_changes(base_policy, head_policy, fixture_custom_roles(head_dir), changed)
    if database_url and changed:
        found = store_custom_roles(database_url, diff.changed_builtins)
        diff.custom += custom_changes(base_policy, head_policy, found, changed)
    out.write(render_markdown(diff) if fmt == "markdown" else render_text(diff))
    return 1 if diff.granted else 0


__all__ = ["Diff", "compare", "render_markdown", "render_text", "run_diff"]
