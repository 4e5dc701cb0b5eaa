"""``orgauthz policy lint``: every way the files in ``policies/`` break the SPEC, with file and line.

:func:`lint` returns a list of :class:`Finding` (empty when the catalog is sound). It runs,
in order, and stops after a stage that found something (later stages need earlier ones
sound: effective scopes cannot be computed over an include cycle):

1. shape: valid YAML, known keys, no duplicate keys, lists where lists belong;
2. :func:`orgauthz.domain.policy.policy_findings` (unknown scopes, cycles, R20 ladder...);
3. the access rules the built-in roles must respect (R2a, R8, R11, R16, R20, R21);
4. ``model.conf``: Casbin loads it, the engine compiles it (the effect is allow-any and the
   matcher is one :mod:`orgauthz.engine.matcher` accepts: the server refuses any other), and a
   probe organization evaluated by a plain ``casbin.Enforcer`` gets exactly the decisions the
   SPEC prescribes (R2a, R11, R16-R18; on its objects R26, R27);
5. ``routes.yaml``, when the directory has one (Envoy's external authorization,
   :mod:`orgauthz.domain.routes`): shape, known methods and workspace scopes, object kinds,
   template variables the path defines, no two routes one request could match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from casbin.model import Model

from orgauthz.domain import lines as L
from orgauthz.domain import routes, rules
from orgauthz.domain.policy import (
    ORGANIZATION,
    WILDCARD,
    WORKSPACE,
    PolicySet,
    parse_policy,
    policy_findings,
    role_key,
)
from orgauthz.errors import PolicyError

# What a key may hold in each file: top level, then the body of one entry.
_SCOPE_FILE: Final = {"workspace_scopes", "organization_permissions", "renamed", "object_acls"}
_ROLE_FILE: Final = {"workspace_roles", "organization_roles"}
_SCOPE_KEYS: Final = {"description", "includes", "prefect", "origin"}
# Sections that map a name to a name (old id -> new id), not to an entry.
_FLAT: Final = {"renamed"}
# Checked by policy_findings (kinds, levels, governed scopes): its shape is its own.
_OWN_SHAPE: Final = {"object_acls"}
_ROLE_KEYS: Final = {"description", "scopes", "inherits", "except"}

# R8: making someone an Admin is changing a member's organization role.
ADMIN_ONLY: Final = ("update:account_membership",)
# R24: what an Owner holds beyond an Admin.
OWNERS_ONLY: Final = tuple(sorted(rules.OWNERS_ONLY))
# R16, R17: managing workspace access and the default role belongs to Owners (and Admins).
OWNER_ONLY: Final = (
    "manage_workspace_users",
    "manage_workspace_service_accounts",
    "manage_workspace_teams",
    "manage_acls",
)
# R20: what each rung of the ladder adds, at the least.
LADDER_MUST_HOLD: Final = {
    "Runner": ("run_deployments",),
    "Developer": (
        "run_flows",
        "manage_flows",
        "manage_deployments",
        "manage_work_pools",
        "manage_blocks",
        "see_secret_blocks",
        "manage_automations",
        "see_workspace_settings",
    ),
    "Owner": ("manage_workspace_users", "write_workspace_settings", "manage_acls"),
}
# R21: Prefect Cloud's 61 scope ids (the `scope` enum of its OpenAPI document v0.8.4).
PREFECT_SCOPES: Final = frozenset(
    {
        "manage_acls",
        "manage_artifacts",
        "manage_assets",
        "manage_automations",
        "manage_blocks",
        "manage_concurrency_limits",
        "manage_deployments",
        "manage_event_publications",
        "manage_event_subscriptions",
        "manage_events",
        "manage_flows",
        "manage_incidents",
        "manage_mex_deploy",
        "manage_mex_storage",
        "manage_notifications",
        "manage_saved_search",
        "manage_tags",
        "manage_variables",
        "manage_webhooks",
        "manage_work_pools",
        "manage_work_queues",
        "manage_workers",
        "manage_workspace_service_accounts",
        "manage_workspace_settings",
        "manage_workspace_teams",
        "manage_workspace_users",
        "run_deployments",
        "run_flows",
        "run_tasks",
        "see_artifacts",
        "see_assets",
        "see_automations",
        "see_blocks",
        "see_concurrency_limits",
        "see_deployments",
        "see_event_publications",
        "see_event_subscriptions",
        "see_events",
        "see_flows",
        "see_incidents",
        "see_notifications",
        "see_secret_blocks",
        "see_tags",
        "see_variables",
        "see_webhooks",
        "see_work_pools",
        "see_work_queues",
        "see_workers",
        "see_workspace_service_accounts",
        "see_workspace_settings",
        "see_workspace_users",
        "write_artifacts",
        "write_assets",
        "write_deployments",
        "write_incidents",
        "write_notifications",
        "write_variables",
        "write_work_pools",
        "write_work_queues",
        "write_workers",
        "write_workspace_settings",
    }
)
# R21: Prefect Cloud's 47 account permission ids (the `permission` enum of the same document).
PREFECT_PERMISSIONS: Final = frozenset(
    {
        "add:account_member",
        "administrate:sso",
        "administrate:workspace",
        "bypass:sso",
        "create:account_role",
        "create:audit_event",
        "create:bot",
        "create:invitation",
        "create:team",
        "create:workspace",
        "create:workspace_invitation",
        "create:workspace_role",
        "delete:account",
        "delete:account_membership",
        "delete:account_role",
        "delete:bot",
        "delete:mex-storage",
        "delete:team",
        "delete:workspace",
        "delete:workspace_role",
        "read:account",
        "read:account_membership",
        "read:account_role",
        "read:audit_event",
        "read:billing",
        "read:bot",
        "read:integrations",
        "read:invitation",
        "read:ip_allowlist",
        "read:mex-storage",
        "read:sso",
        "read:team",
        "read:workspace",
        "read:workspace_invitation",
        "read:workspace_role",
        "update:account",
        "update:account_membership",
        "update:account_role",
        "update:billing",
        "update:bot",
        "update:integrations",
        "update:invitation",
        "update:ip_allowlist",
        "update:mex-storage",
        "update:team",
        "update:workspace_invitation",
        "update:workspace_role",
    }
)
_WS_SCOPE_NAME: Final = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_ORG_PERM_NAME: Final = re.compile(r"^[a-z]+:[a-z][a-z0-9_-]*$")


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


def display_path(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies under it (as reviewers see it)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def warnings(directory: Path) -> list[Finding]:
    """What still works but goes away in the next release: renamed ids in ``roles.yaml`` (R21)."""
    try:
        policy = parse_policy(directory)
    except PolicyError:
        return []
    return sorted(
        Finding(
            *_where(policy, f"{key}/scope:{old}"),
            f"{key.partition(':')[2]}: {old!r} is deprecated, write {policy.renamed[old]!r}",
        )
        for key, old in policy.deprecated_uses
    )


def lint(directory: Path) -> list[Finding]:
    """Every finding for the catalog in ``directory``, sorted by file and line."""
    found = _shape(directory)
    if found:
        return sorted(found)
    try:
        policy = parse_policy(directory)
    except PolicyError as exc:
        return [Finding(display_path(exc.file or directory), exc.line, _bare(exc))]
    found = [
        Finding(display_path(e.file or directory / "roles.yaml"), e.line, _bare(e)) for e in policy_findings(policy)
    ]
    if found:
        return sorted(found)
    found = _rules(policy)
    found += _model(policy)
    found += _routes(directory, policy)
    return sorted(found)


def _routes(directory: Path, policy: PolicySet) -> list[Finding]:
    path = directory / routes.FILE_NAME
    if not path.exists():
        return []
    _, findings = routes.read_routes(path, policy)
    return [Finding(display_path(path), line, message) for line, message in findings]


def _bare(err: PolicyError) -> str:
    """The message without the ``file:line:`` prefix PolicyError puts in front."""
    text = str(err)
    where = f"{err.file}:{err.line}: " if err.file and err.line else (f"{err.file}: " if err.file else "")
    return text.removeprefix(where)


# -- 1. shape ------------------------------------------------------------------------


def _shape(directory: Path) -> list[Finding]:
    found: list[Finding] = []
    if not (directory / "model.conf").is_file():
        found.append(Finding(display_path(directory / "model.conf"), 0, "file is missing"))
    for name, top, body_keys, list_key in (
        ("scopes.yaml", _SCOPE_FILE, _SCOPE_KEYS, ("includes",)),
        ("roles.yaml", _ROLE_FILE, _ROLE_KEYS, ("scopes", "except")),
    ):
        found += _shape_file(directory / name, top, body_keys, list_key)
    return found


def _shape_file(path: Path, top: set[str], body_keys: set[str], list_keys: tuple[str, ...]) -> list[Finding]:
    shown = display_path(path)
    out: list[Finding] = []

    def at(node: yaml.Node, message: str) -> None:
        out.append(Finding(shown, node.start_mark.line + 1, message))

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except FileNotFoundError:
        return [Finding(shown, 0, "file is missing")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [Finding(shown, (mark.line + 1) if mark else 1, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(root, yaml.MappingNode):
        return [Finding(shown, 1, "must be a YAML mapping")]
    for key, section in _pairs(root, at):
        if key.value not in top:
            at(key, f"unknown section {key.value!r} (expected {', '.join(sorted(top))})")
            continue
        if _is_null(section):
            continue
        if not isinstance(section, yaml.MappingNode):
            at(section, f"{key.value} must be a mapping of names to entries")
            continue
        if key.value in _OWN_SHAPE:
            continue
        if key.value in _FLAT:
            for name, value in _pairs(section, at):
                if not isinstance(value, yaml.ScalarNode) or _is_null(value) or not value.value:
                    at(value, f"{key.value}: {name.value!r} must map to one id")
            continue
        for name, body in _pairs(section, at):
            if _is_null(body):
                continue
            if not isinstance(body, yaml.MappingNode):
                at(body, f"{name.value!r} must be a mapping ({', '.join(sorted(body_keys))})")
                continue
            for field, value in _pairs(body, at):
                if field.value not in body_keys:
                    expected = ", ".join(sorted(body_keys))
                    at(field, f"{name.value!r} has unknown key {field.value!r} (expected {expected})")
                elif field.value in list_keys:
                    if not isinstance(value, yaml.SequenceNode):
                        at(value, f"{name.value!r}: {field.value} must be a list")
                        continue
                    for item in value.value:
                        if not isinstance(item, yaml.ScalarNode) or not item.value:
                            at(item, f"{name.value!r}: every {field.value} entry must be a name")
                elif not isinstance(value, yaml.ScalarNode):
                    at(value, f"{name.value!r}: {field.value} must be a string")
            if "description" not in {f.value for f, _ in body.value}:
                at(name, f"{name.value!r} has no description (reviewers read it)")
    return out


def _pairs(node: yaml.MappingNode, at: Callable[[yaml.Node, str], None]) -> Iterable[tuple[yaml.ScalarNode, yaml.Node]]:
    """The mapping's entries; reports duplicate keys, which YAML would silently collapse."""
    seen: dict[str, int] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            at(key, "keys must be plain names")
            continue
        if key.value in seen:
            at(key, f"duplicate key {key.value!r} (first at line {seen[key.value]}); YAML keeps only the last one")
            continue
        seen[key.value] = key.start_mark.line + 1
        yield key, value


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


# -- 3. access rules of the built-in roles ---------------------------------------------


def effective(policy: PolicySet, role: str, level: str = WORKSPACE) -> frozenset[str]:
    """The built-in role's effective scopes: its own, inherited, and everything they include."""
    found = policy.role(level, role)
    assert found is not None, (level, role)
    return policy.effective_scopes(policy.held_scopes(found))


def _where(policy: PolicySet, key: str) -> tuple[str, int]:
    file, line = policy.source_lines.get(key) or policy.source_lines.get(key.split("/")[0], ("", 0))
    return display_path(file or policy.directory / "roles.yaml"), line


def _rules(policy: PolicySet) -> list[Finding]:
    out: list[Finding] = []

    def at(key: str, message: str) -> None:
        out.append(Finding(*_where(policy, key), message))

    org = {r.name: effective(policy, r.name, ORGANIZATION) for r in policy.builtin_roles(ORGANIZATION)}
    eff = {r.name: effective(policy, r.name) for r in policy.builtin_roles(WORKSPACE)}
    owner, admin = role_key(ORGANIZATION, rules.OWNER), role_key(ORGANIZATION, rules.ADMIN)

    missing = sorted(policy.all_scopes - org[rules.OWNER])
    if missing:
        at(owner, f"R2a, R24: Owner must hold every scope and permission; missing {missing}")
    missing = sorted(policy.all_scopes - org[rules.ADMIN] - set(OWNERS_ONLY))
    if missing:
        at(admin, f"R2a: Admin must hold every scope and permission but {list(OWNERS_ONLY)}; missing {missing}")
    for name, held in org.items():
        for perm in OWNERS_ONLY:
            if name != rules.OWNER and perm in held:
                at(_scope_key(policy, ORGANIZATION, name, perm), f"R24: only Owner may hold {perm}; {name} does")
    for name in org:
        if rules.is_admin(name):
            continue
        role, chain = policy.organization_roles[name], []
        while role.inherits in policy.organization_roles and role.inherits not in chain:
            chain.append(role.inherits)
            role = policy.organization_roles[role.inherits]
        if any(rules.is_admin(r) for r in chain):
            at(
                f"{role_key(ORGANIZATION, name)}/inherits",
                f"R11: {name} inherits an Admin role; service accounts hold {name}, so this makes them Admins",
            )
        elif org[name] >= org[rules.ADMIN]:
            at(
                role_key(ORGANIZATION, name),
                f"R11: {name} holds everything Admin holds; service accounts hold {name}, so this makes them Admins",
            )
        for perm in ADMIN_ONLY:
            if perm in org[name]:
                at(
                    _scope_key(policy, ORGANIZATION, name, perm),
                    f"R8: only Owner and Admin may hold {perm} (it makes someone an Admin); {name} does",
                )
    for name in eff:
        for scope in OWNER_ONLY:
            if name != "Owner" and scope in eff[name]:
                at(
                    _scope_key(policy, WORKSPACE, name, scope),
                    f"R16: only Owner (and organization Admins) may hold {scope}; {name} does",
                )
    for name, needed in LADDER_MUST_HOLD.items():
        lacking = sorted(s for s in needed if s in policy.workspace_scopes and s not in eff[name])
        if lacking:
            at(role_key(WORKSPACE, name), f"R20: {name} must hold {lacking}")
    if "Worker" in eff:
        extra = sorted(s for s in eff["Worker"] if s.startswith("manage_"))
        if extra:
            at(role_key(WORKSPACE, "Worker"), f"R20: Worker is the least a worker needs; it must not hold {extra}")
    for table, prefect in (
        (policy.workspace_scopes, PREFECT_SCOPES),
        (policy.organization_permissions, PREFECT_PERMISSIONS),
    ):
        for name, entry in table.items():
            if name not in prefect and entry.origin != "orgauthz":
                at(
                    f"scope:{name}",
                    f"R21: {name!r} is not one of Prefect's ids: use Prefect's, or mark it origin: orgauthz",
                )
            elif name in prefect and entry.origin == "orgauthz":
                at(f"scope:{name}", f"R21: {name!r} is Prefect's own id: it is not origin: orgauthz")
    for name in policy.workspace_scopes:
        if not _WS_SCOPE_NAME.match(name):
            at(f"scope:{name}", f"R21: workspace scope {name!r} must be snake_case, like see_flows")
    for name in policy.organization_permissions:
        if not _ORG_PERM_NAME.match(name):
            at(f"scope:{name}", f"R21: organization permission {name!r} must be verb:object, like create:invitation")
    return out


def _scope_key(policy: PolicySet, level: str, role: str, scope: str) -> str:
    """The line that brings ``scope`` into ``role``: the role's own entry granting it, else its inherits."""
    granting = policy.included_by.get(scope, frozenset({scope}))
    current = policy.role(level, role)
    while current is not None:
        for s in current.scopes:
            if s in granting or s == WILDCARD:
                return f"{current.key}/scope:{s}"
        if not current.inherits:
            break
        current = policy.role(level, current.inherits)
    return f"{role_key(level, role)}/inherits"


# -- 4. model.conf ---------------------------------------------------------------------

_SECTIONS: Final = {
    "r": "request_definition",
    "p": "policy_definition",
    "g": "role_definition",
    "e": "policy_effect",
    "m": "matchers",
}


def _model(policy: PolicySet) -> list[Finding]:
    path = display_path(policy.directory / "model.conf")
    text = policy.model_text
    matcher_line = _line_of(text, r"^\s*m\s*=") or 1
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # Casbin raises bare RuntimeError and friends
        return [
            Finding(
                path, _line_of(text, str(exc).split(" = ")[0].split()[-1]) or 1, f"Casbin cannot load the model: {exc}"
            )
        ]
    out: list[Finding] = []
    for sec, title in _SECTIONS.items():
        if sec not in model.model:
            out.append(Finding(path, 1, f"section [{title}] is missing"))
    if out:
        return out
    for key in ("g", "g2", "g3", "g4", "g5"):
        if key not in model.model["g"]:
            out.append(Finding(path, _line_of(text, r"^\[role_definition\]") or 1, f"role definition {key} is missing"))
    if model.model["r"]["r"].tokens != ["r_sub", "r_org", "r_dom", "r_obj", "r_res"]:
        out.append(Finding(path, _line_of(text, r"^\s*r\s*=") or 1, "request must be r = sub, org, dom, obj, res"))
    if model.model["p"]["p"].tokens != ["p_sub", "p_obj"]:
        out.append(Finding(path, _line_of(text, r"^\s*p\s*=") or 1, "policy must be p = sub, obj"))
    if out:
        return out
    from orgauthz.engine.enforcer import check_model  # engine imports stay out of plain lint paths

    try:
        check_model(policy)  # the server refuses to start with a model its engine cannot compile
    except PolicyError as exc:
        return [Finding(path, exc.line or matcher_line, _bare(exc))]
    try:
        wrong = probe_mismatches(policy)
    except Exception as exc:  # any failure to evaluate is the model's fault
        return [Finding(path, matcher_line, f"Casbin cannot evaluate the matcher: {type(exc).__name__}: {exc}")]
    return [Finding(path, matcher_line, m) for m in wrong]


def _line_of(text: str, pattern: str) -> int:
    rx = re.compile(pattern)
    for i, line in enumerate(text.splitlines(), 1):
        if rx.search(line):
            return i
    return 0


# The probe organization: one subject per kind of access the SPEC distinguishes.
PROBE_ORG: Final = "probe"
_WS_DEFAULT, _WS_CLOSED, _WS_OWNED = "ws-default-viewer", "ws-no-default", "ws-default-owner"


def probe_facts() -> tuple[dict[str, str], list[tuple[str, str, str]], dict[str, str | None]]:
    """(subject -> organization role, workspace grants, workspace -> default role)."""
    org_roles = {
        "user:org-owner": "Owner",
        "user:admin": "Admin",
        "user:member": "Member",
        "user:worker-user": "Member",
        "user:owner": "Member",
        "service_account:bot": "Member",
    }
    grants = [
        (_WS_DEFAULT, "service_account:bot", "Worker"),
        (_WS_CLOSED, "user:owner", "Owner"),
        (_WS_CLOSED, "user:worker-user", "Worker"),
        (_WS_DEFAULT, "user:worker-user", "Runner"),
        (_WS_OWNED, "service_account:bot", "Developer"),
    ]
    defaults: dict[str, str | None] = {_WS_DEFAULT: "Viewer", _WS_CLOSED: None, _WS_OWNED: "Owner"}
    return org_roles, grants, defaults


# The probe organization's objects (R26, R27): an ACL listing one subject; a grant entry
# for a member who holds nothing in the workspace and one naming someone outside the
# organization; a deployment whose work pool has an ACL (its own, empty, is set aside); an
# empty ACL where the default role is Owner (member users keep access, service accounts not).
_LISTED, _GRANTED, _KEPT = "deployment:listed", "block:granted", "block:kept"
_DELEGATED, _POOL = "deployment:delegated", "work_pool:pool"


def probe_objects() -> tuple[dict[tuple[str, str], list[L.AclEntry]], dict[tuple[str, str], str]]:
    """((workspace, object) -> ACL entries, (workspace, deployment) -> work pool)."""
    acls = {
        (_WS_DEFAULT, _LISTED): [L.AclEntry("user:worker-user", "run")],
        (_WS_CLOSED, _GRANTED): [
            L.AclEntry("user:member", "view", grant=True),
            L.AclEntry("user:outsider", "manage", grant=True),
        ],
        (_WS_CLOSED, _POOL): [L.AclEntry("user:worker-user", "view")],
        (_WS_CLOSED, _DELEGATED): [],
        (_WS_OWNED, _KEPT): [],
    }
    pools = {(_WS_CLOSED, _DELEGATED): _POOL}
    return acls, pools


def probe_object_names() -> list[tuple[str, str]]:
    """(workspace, object) of every probe object, and one without an ACL."""
    acls, pools = probe_objects()
    return sorted({*acls, *pools, (_WS_DEFAULT, "deployment:no-acl")})


def expected_on_object(
    policy: PolicySet, subject: str, workspace: str, obj: str, held: frozenset[str]
) -> frozenset[str]:
    """What the SPEC says the probe subject may do on ``obj``, given ``held`` in the workspace
    (R26, R27): a scope the object's kind governs, under an ACL (the deployment's work pool's
    when that has one), needs a listing at a covering level or full access (organization Owner
    or Admin, workspace Owner); a grant entry gives its level to a member without the scope."""
    org_roles, grants, defaults = probe_facts()
    acls, pools = probe_objects()
    kind = policy.object_kinds[obj.partition(":")[0]]
    governing = obj
    pool = pools.get((workspace, obj)) if kind.delegates_to else None
    if pool is not None and (workspace, pool) in acls:
        governing = pool  # R27: the work pool's ACL governs the deployment
    entries = acls.get((workspace, governing))
    levels = policy.object_kinds[governing.partition(":")[0]].levels
    keeps = rules.is_admin(org_roles.get(subject)) or (workspace, subject, rules.OWNER) in grants
    keeps |= subject.startswith("user:") and subject in org_roles and defaults.get(workspace) == rules.OWNER
    out = set()
    for scope in policy.workspace_scopes:
        level = kind.governs.get(scope)
        if level is None or entries is None:
            if scope in held:
                out.add(scope)  # not governed, or no ACL: the workspace decides
            continue
        named = [e for e in entries if e.actor == subject and levels.index(e.level) >= levels.index(level)]
        if (scope in held and (named or keeps)) or (subject in org_roles and any(e.grant for e in named)):
            out.add(scope)
    return frozenset(out)


def expected_scopes(policy: PolicySet, subject: str, domain: str) -> frozenset[str]:
    """What the SPEC says the probe subject holds in ``domain`` (R2a, R11, R16-R18)."""
    org_roles, grants, defaults = probe_facts()
    if subject not in org_roles:
        return frozenset()  # outside the organization: nothing (R16)
    org_eff = effective(policy, org_roles[subject], ORGANIZATION)
    if domain == L.org_domain(PROBE_ORG):
        return org_eff & frozenset(policy.organization_permissions)
    ws = domain.removeprefix("ws:")
    held = set(org_eff & frozenset(policy.workspace_scopes))  # R2a: Admin holds every scope everywhere
    for g_ws, g_sub, role in grants:
        if g_ws == ws and g_sub == subject:
            held |= effective(policy, role)  # R16
    default = defaults.get(ws)
    if default and subject.startswith("user:"):
        held |= effective(policy, default)  # R17, R18: users only, never service accounts
    return frozenset(held)


def probe_mismatches(policy: PolicySet) -> list[str]:
    """Decisions of a plain ``casbin.Enforcer`` on the probe organization that differ from the SPEC."""
    from orgauthz.engine.enforcer import new_enforcer  # engine imports stay out of plain lint paths

    org_roles, grants, defaults = probe_facts()
    acls, pools = probe_objects()
    snap = L.OrgSnapshot(
        org_id=PROBE_ORG,
        revision=1,
        workspaces=defaults,
        members={s.removeprefix("user:"): r for s, r in org_roles.items() if s.startswith("user:")},
        service_accounts={
            s.removeprefix("service_account:"): r for s, r in org_roles.items() if s.startswith("service_account:")
        },
        grants=[(ws, s, r) for ws, s, r in grants],
        acls=acls,
        pools=pools,
    )
    enforcer = new_enforcer(policy.model_text, L.all_lines(policy, [snap]))
    org_dom = L.org_domain(PROBE_ORG)
    out: list[str] = []
    for subject in [*org_roles, "user:outsider"]:
        for domain, catalog in (
            (org_dom, policy.organization_permissions),
            *((L.ws_domain(ws), policy.workspace_scopes) for ws in defaults),
        ):
            want = expected_scopes(policy, subject, domain)
            got = {s for s in catalog if enforcer.enforce(subject, org_dom, domain, s, "")}
            extra, lacking = sorted(got - want), sorted(want - got)
            where = f"{subject} in {domain}"
            if extra:
                out.append(
                    f"the matcher grants {where} {_short(extra)}, which the SPEC does not "
                    f"({_rule_hint(subject, domain)})"
                )
            if lacking:
                out.append(
                    f"the matcher denies {where} {_short(lacking)}, which the SPEC grants "
                    f"({_rule_hint(subject, domain)})"
                )
        for ws, obj in probe_object_names():
            # A scope the object's kind does not govern is asked as above: no object (r.res "").
            domain, need = L.ws_domain(ws), {s: L.object_need(policy, ws, obj, s) for s in policy.workspace_scopes}
            governed = {s for s, res in need.items() if res}
            want = expected_on_object(policy, subject, ws, obj, expected_scopes(policy, subject, domain)) & governed
            got = {s for s in governed if enforcer.enforce(subject, org_dom, domain, s, need[s])}
            extra, lacking = sorted(got - want), sorted(want - got)
            where, hint = f"{subject} in {domain} on {obj}", _object_hint(obj)
            if extra:
                out.append(f"the matcher grants {where} {_short(extra)}, which the SPEC does not ({hint})")
            if lacking:
                out.append(f"the matcher denies {where} {_short(lacking)}, which the SPEC grants ({hint})")
    return out


def _object_hint(obj: str) -> str:
    if obj == _DELEGATED:
        return "R27: the work pool's ACL governs the deployment"
    if obj == _GRANTED:
        return "R26: a grant entry gives its level, within the organization"
    return "R26, R2a: an ACL admits listed subjects; organization Owners and Admins and workspace Owners keep access"


def _short(names: list[str], most: int = 4) -> str:
    head = ", ".join(names[:most])
    return head + (f" and {len(names) - most} more" if len(names) > most else "")


def _rule_hint(subject: str, domain: str) -> str:
    if subject == "user:admin":
        return "R2, R2a: organization Admin"
    if subject == "user:org-owner":
        return "R2, R2a, R24: organization Owner"
    if subject.startswith("service_account:"):
        return "R11: never Admin; R17: no default workspace role"
    if subject == "user:outsider":
        return "R16: nothing outside the organization"
    if domain.startswith("org:"):
        return "R1, R8: organization role"
    return "R16-R18: workspace role union default role"


__all__ = ["Finding", "display_path", "effective", "lint", "probe_mismatches", "warnings"]
