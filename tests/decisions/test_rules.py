"""The access rules through the whole gRPC path (SQLite and PostgreSQL).

One organization, Acme, holds every case; Globex shares a member with it (bob) so that
nothing of one organization leaks into the other. Expected decisions are written out
here, from SPEC §1 and the role tables in SPEC R20, not computed from ``policies/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.store import snapshots
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc
from tests.conftest import settings_for
from tests.support.orgs import ACME_RULES, GLOBEX_RULES, seed

AUTHZ = "orgauthz.v1.AuthorizationService"

DOC = {"organizations": [ACME_RULES, GLOBEX_RULES]}
ACME_WORKSPACES = ["acme-empty", "acme-ladder", "acme-prod", "acme-sandbox", "acme-vault"]

Stub = authorization_pb2_grpc.AuthorizationServiceStub


@pytest.fixture
async def rev(app: App, policy: PolicySet, authz: Stub) -> int:
    """Seeds Acme and Globex; returns the revision a Check must see."""
    assert app.db is not None
    revision = seed(app.db, policy, DOC)
    # Wait once for the server to reach it; later Checks in the test need no min_revision.
    await authz.Check(
        pb.CheckRequest(subject="user:alice", workspace="acme-prod", scope="see_flows", min_revision=revision)
    )
    return revision


def ws_check(subject: str, workspace: str, scope: str, **kw: Any) -> pb.CheckRequest:
    return pb.CheckRequest(subject=subject, workspace=workspace, scope=scope, **kw)


def org_check(subject: str, organization: str, scope: str, **kw: Any) -> pb.CheckRequest:
    return pb.CheckRequest(subject=subject, organization=organization, scope=scope, **kw)


async def decide_all(authz: Stub, cases: list[tuple[pb.CheckRequest, bool]]) -> None:
    """Asks every case with Check and all of them at once with BatchCheck; both must match."""
    wrong = []
    for req, expected in cases:
        got = (await authz.Check(req)).allowed
        if got != expected:
            wrong.append((req.subject, req.workspace or req.organization, req.scope, expected))
    assert not wrong, f"Check disagrees on (subject, target, scope, expected): {wrong}"
    batch = await authz.BatchCheck(pb.BatchCheckRequest(items=[req for req, _ in cases]))
    assert [r.allowed for r in batch.results] == [e for _, e in cases]


async def scopes_of(authz: Stub, subject: str, workspace: str = "", organization: str = "") -> set[str]:
    if workspace:
        req = pb.ListScopesRequest(subject=subject, workspace=workspace)
    else:
        req = pb.ListScopesRequest(subject=subject, organization=organization)
    return set((await authz.ListScopes(req)).scopes)


# -- R2, R2a: organization Admins ------------------------------------------------------


async def test_r2a_admin_has_every_scope_in_every_workspace(authz: Stub, rev: int, policy: PolicySet) -> None:
    every = sorted(policy.workspace_scopes)
    cases = [(ws_check("user:alice", ws, s), True) for ws in ACME_WORKSPACES for s in every]
    await decide_all(authz, cases)
    for ws in ACME_WORKSPACES:  # including workspaces with no grant and No Access default
        assert await scopes_of(authz, "user:alice", ws) == set(every)
    # Admin of Acme only: nothing in Globex.
    assert not (await authz.Check(ws_check("user:alice", "gx-main", "see_flows"))).allowed


async def test_r2_admin_has_every_organization_permission_but_bypass_sso(
    authz: Stub, rev: int, policy: PolicySet
) -> None:
    every = sorted(set(policy.organization_permissions) - {"bypass:sso"})
    await decide_all(authz, [(org_check("user:alice", "acme", p), True) for p in every])
    await decide_all(authz, [(org_check("user:alice", "acme", "bypass:sso"), False)])  # R24: Owners only
    assert await scopes_of(authz, "user:alice", organization="acme") == set(every)
    assert await scopes_of(authz, "user:alice", organization="globex") == set()


ORG_LEVEL = [
    # (subject, organization, permission, allowed)
    ("user:alice", "acme", "create:invitation", True),
    ("user:alice", "acme", "read:audit_event", True),
    ("user:alice", "acme", "delete:workspace", True),
    ("user:bob", "acme", "read:account", True),
    ("user:bob", "acme", "read:account_membership", True),
    ("user:bob", "acme", "read:workspace", True),
    ("user:bob", "acme", "read:account_role", True),
    ("user:bob", "acme", "create:invitation", False),
    ("user:bob", "acme", "update:account_membership", False),
    ("user:bob", "acme", "create:workspace", False),
    ("user:bob", "acme", "read:audit_event", False),
    ("user:bob", "globex", "read:account", True),
    ("user:zed", "globex", "delete:workspace", True),
    ("user:zed", "acme", "read:account", False),  # Admin elsewhere is nothing here
    ("service_account:ci-bot", "acme", "read:workspace", True),
    ("service_account:ci-bot", "acme", "create:workspace", False),
    ("service_account:ci-bot", "globex", "read:account", False),
    ("user:ghost", "acme", "read:account", False),
    ("user:alice", "no-such-org", "read:account", False),
]


async def test_organization_permissions_admin_versus_member(authz: Stub, rev: int) -> None:
    await decide_all(authz, [(org_check(s, o, p), e) for s, o, p, e in ORG_LEVEL])
    assert await scopes_of(authz, "user:bob", organization="acme") == {
        "read:account",
        "read:account_membership",
        "read:workspace",
        "read:account_role",
        "read:bot",  # R30
        "read:team",
        "read:workspace_role",
    }


# -- R17: the default workspace role ------------------------------------------------------


async def test_r17_default_role_applies_to_every_user_member(authz: Stub, rev: int) -> None:
    await decide_all(
        authz,
        [
            (ws_check("user:erin", "acme-prod", "see_flows"), True),  # Viewer by default, no grant
            (ws_check("user:erin", "acme-prod", "see_workspace_users"), True),
            (ws_check("user:erin", "acme-prod", "see_workspace_settings"), False),  # Developer up
            (ws_check("user:erin", "acme-prod", "run_deployments"), False),
            (ws_check("user:dave", "acme-prod", "see_deployments"), True),  # custom organization role
            (ws_check("user:erin", "acme-vault", "see_secret_blocks"), True),  # custom default role
            (ws_check("user:erin", "acme-vault", "see_blocks"), True),
            (ws_check("user:erin", "acme-vault", "see_flows"), False),
            (ws_check("user:bob", "gx-main", "manage_workspace_users"), True),  # Globex default Owner
            (ws_check("user:alice", "gx-main", "see_flows"), False),  # not a Globex member
            (ws_check("user:ghost", "acme-prod", "see_flows"), False),  # not a member at all
        ],
    )


async def test_r17_default_role_never_applies_to_service_accounts(authz: Stub, rev: int) -> None:
    await decide_all(
        authz,
        [
            (ws_check("service_account:audit-bot", "acme-prod", "see_flows"), False),
            (ws_check("service_account:audit-bot", "acme-vault", "see_secret_blocks"), False),
            (ws_check("service_account:ci-bot", "acme-vault", "see_blocks"), False),
            # ci-bot's own grant in acme-prod still counts (R16).
            (ws_check("service_account:ci-bot", "acme-prod", "see_flows"), True),
        ],
    )
    assert await scopes_of(authz, "service_account:audit-bot", "acme-prod") == set()
    r = await authz.Check(ws_check("service_account:audit-bot", "acme-prod", "see_flows", explain=True))
    assert not r.allowed
    assert any("never applies to service accounts" in reason for reason in r.reasons), r.reasons


async def test_r17_default_no_access_gives_members_nothing(authz: Stub, rev: int, policy: PolicySet) -> None:
    for ws in ("acme-empty", "acme-sandbox"):  # no default role set: No Access
        assert await scopes_of(authz, "user:erin", ws) == set()
        await decide_all(authz, [(ws_check("user:erin", ws, s), False) for s in sorted(policy.workspace_scopes)])


# -- R18: union ---------------------------------------------------------------------------


async def test_r18_union_of_default_and_grant(authz: Stub, rev: int) -> None:
    # carol in acme-prod: default Viewer plus her Worker grant.
    await decide_all(
        authz,
        [
            (ws_check("user:carol", "acme-prod", "see_automations"), True),  # Viewer only
            (ws_check("user:carol", "acme-prod", "see_workspace_users"), True),  # Viewer only
            (ws_check("user:carol", "acme-prod", "write_workers"), True),  # Worker only
            (ws_check("user:carol", "acme-prod", "run_flows"), True),  # Worker only
            (ws_check("user:carol", "acme-prod", "run_deployments"), False),  # neither
            (ws_check("user:carol", "acme-prod", "manage_flows"), False),
            # bob: Developer grant over Viewer default: the grant adds, the default takes nothing away.
            (ws_check("user:bob", "acme-prod", "manage_deployments"), True),
            (ws_check("user:bob", "acme-prod", "manage_workspace_users"), False),
        ],
    )
    viewer = await scopes_of(authz, "user:erin", "acme-prod")  # default only
    worker = await scopes_of(authz, "user:l-worker", "acme-ladder")  # grant only
    assert await scopes_of(authz, "user:carol", "acme-prod") == viewer | worker
    assert viewer - worker
    assert worker - viewer


# -- R20: the built-in ladder ---------------------------------------------------------------

# fmt: off
LADDER = [
    # scope                             Viewer Runner Dev.   Owner  Worker
    ("see_flows",                       True , True , True , True , True ),  # Worker: via run_flows
    ("see_workspace_users",             True , True , True , True , False),
    ("see_automations",                 True , True , True , True , False),
    ("run_deployments",                 False, True , True , True , False),
    ("run_flows",                       False, False, True , True , True ),  # Worker: reports flow run states
    ("manage_flows",                    False, False, True , True , False),
    ("write_deployments",               False, False, True , True , False),
    ("manage_deployments",              False, False, True , True , False),
    ("write_work_pools",                False, False, True , True , False),
    ("manage_work_pools",               False, False, True , True , False),
    ("see_secret_blocks",               False, False, True , True , False),
    ("manage_blocks",                   False, False, True , True , False),
    ("see_workspace_settings",          False, False, True , True , False),
    ("write_workspace_settings",        False, False, False, True , False),
    ("manage_workspace_users",          False, False, False, True , False),
    ("manage_workspace_settings",       False, False, False, True , False),
    ("manage_acls",                     False, False, False, True , False),
    ("see_work_pools",                  True , True , True , True , True ),
    ("see_work_queues",                 True , True , True , True , True ),
    ("write_workers",                   False, False, True , True , True ),
    ("see_variables",                   True , True , True , True , True ),
    ("manage_variables",                False, False, True , True , False),
]
# fmt: on
ROLES = ("Viewer", "Runner", "Developer", "Owner", "Worker")


async def test_r20_builtin_ladder_viewer_runner_developer_owner_worker(authz: Stub, rev: int) -> None:
    cases = [
        (ws_check(f"user:l-{role.lower()}", "acme-ladder", scope), row[1 + i])
        for row in LADDER
        for i, role in enumerate(ROLES)
        for scope in [row[0]]
    ]
    await decide_all(authz, cases)
    held = {role: await scopes_of(authz, f"user:l-{role.lower()}", "acme-ladder") for role in ROLES}
    assert held["Viewer"] < held["Runner"] < held["Developer"] < held["Owner"]
    assert held["Worker"] < held["Developer"]


# -- R21: scope includes --------------------------------------------------------------------


async def test_r21_scope_includes_grant_what_they_include(authz: Stub, rev: int) -> None:
    await decide_all(
        authz,
        [
            # sam holds acme-secrets: see_secret_blocks only, which includes see_blocks.
            (ws_check("user:sam", "acme-sandbox", "see_secret_blocks"), True),
            (ws_check("user:sam", "acme-sandbox", "see_blocks"), True),
            (ws_check("user:sam", "acme-sandbox", "manage_blocks"), False),
            (ws_check("user:sam", "acme-sandbox", "see_flows"), False),
            # tom holds manage_deployments: write_ -> run_ -> see_deployments, transitively.
            (ws_check("user:tom", "acme-sandbox", "write_deployments"), True),
            (ws_check("user:tom", "acme-sandbox", "run_deployments"), True),
            (ws_check("user:tom", "acme-sandbox", "see_deployments"), True),
            (ws_check("user:tom", "acme-sandbox", "see_flows"), False),
            (ws_check("user:tom", "acme-sandbox", "manage_flows"), False),
            (ws_check("user:tom", "acme-sandbox", "see_work_pools"), False),
        ],
    )
    assert await scopes_of(authz, "user:sam", "acme-sandbox") == {"see_secret_blocks", "see_blocks"}
    assert await scopes_of(authz, "user:tom", "acme-sandbox") == {
        "manage_deployments",
        "write_deployments",
        "run_deployments",
        "see_deployments",
    }
    r = await authz.Check(ws_check("user:sam", "acme-sandbox", "see_blocks", explain=True))
    assert r.reasons == ["workspace role acme-secrets (included by see_secret_blocks)"]


# -- R22: custom roles ---------------------------------------------------------------------


async def test_r22_custom_role_inherits_builtin_and_adds_its_own(authz: Stub, rev: int) -> None:
    # ci-bot holds acme-deployer (inherits Runner) in acme-prod.
    await decide_all(
        authz,
        [
            (ws_check("service_account:ci-bot", "acme-prod", "see_workspace_users"), True),  # Viewer via Runner
            (ws_check("service_account:ci-bot", "acme-prod", "run_deployments"), True),  # Runner
            (ws_check("service_account:ci-bot", "acme-prod", "manage_deployments"), True),  # its own
            (ws_check("service_account:ci-bot", "acme-prod", "see_secret_blocks"), True),  # its own
            (ws_check("service_account:ci-bot", "acme-prod", "see_blocks"), True),  # included
            (ws_check("service_account:ci-bot", "acme-prod", "manage_flows"), False),
            (ws_check("service_account:ci-bot", "acme-prod", "manage_workspace_users"), False),
            (ws_check("service_account:ci-bot", "acme-sandbox", "see_flows"), False),  # no grant there
        ],
    )
    runner = await scopes_of(authz, "user:l-runner", "acme-ladder")
    deployer = await scopes_of(authz, "service_account:ci-bot", "acme-prod")
    assert runner < deployer
    assert deployer - runner == {"manage_deployments", "write_deployments", "see_secret_blocks"}


async def test_r22_custom_organization_role_inherits_member(authz: Stub, rev: int) -> None:
    await decide_all(
        authz,
        [
            (org_check("user:dave", "acme", "read:audit_event"), True),  # its own
            (org_check("user:dave", "acme", "read:account"), True),  # inherited from Member
            (org_check("user:dave", "acme", "create:invitation"), False),
            (org_check("service_account:audit-bot", "acme", "read:audit_event"), True),
            (org_check("service_account:audit-bot", "acme", "read:workspace"), True),
            (org_check("service_account:audit-bot", "acme", "delete:service_account"), False),
        ],
    )


# -- decisions on unknown things -------------------------------------------------------------


async def test_unknown_subject_workspace_or_organization_is_a_plain_deny(authz: Stub, rev: int) -> None:
    await decide_all(
        authz,
        [
            (ws_check("user:ghost", "acme-prod", "see_flows"), False),
            (ws_check("service_account:ghost", "acme-prod", "see_flows"), False),
            (ws_check("user:alice", "no-such-workspace", "see_flows"), False),
            (ws_check("user:alice", "acme", "see_flows"), False),  # an organization id is not a workspace
            (org_check("user:alice", "no-such-org", "read:account"), False),
            (org_check("user:alice", "acme-prod", "read:account"), False),  # nor a workspace an organization
        ],
    )
    assert await scopes_of(authz, "user:ghost", "acme-prod") == set()
    assert await scopes_of(authz, "user:alice", "no-such-workspace") == set()


# -- explain ---------------------------------------------------------------------------------


EXPLAINED = [
    (ws_check("user:alice", "acme-empty", "manage_flows"), ["organization Admin"]),
    (ws_check("user:bob", "acme-prod", "manage_flows"), ["workspace role Developer"]),
    (ws_check("user:erin", "acme-prod", "see_flows"), ["default workspace role Viewer"]),
    (org_check("user:alice", "acme", "read:audit_event"), ["organization Admin"]),
    (org_check("user:dave", "acme", "read:audit_event"), ["organization role acme-auditor"]),
]


async def test_explain_says_why(authz: Stub, rev: int) -> None:
    for req, reasons in EXPLAINED:
        req.explain = True
        got = await authz.Check(req)
        assert got.allowed
        assert list(got.reasons) == reasons, (req, got.reasons)
        assert got.revision >= rev
    # bob in acme-prod holds see_flows two ways: both are named.
    got = await authz.Check(ws_check("user:bob", "acme-prod", "see_flows", explain=True))
    assert {r.split(" (")[0] for r in got.reasons} == {"workspace role Developer", "default workspace role Viewer"}
    # Without explain, no reasons.
    assert list((await authz.Check(ws_check("user:bob", "acme-prod", "see_flows"))).reasons) == []
    # A denial names what is missing.
    denied = await authz.Check(ws_check("user:erin", "acme-empty", "see_flows", explain=True))
    assert not denied.allowed
    assert denied.reasons


async def test_explain_does_not_tell_which_ids_exist(authz: Stub, rev: int) -> None:
    """SPEC §2: another organization's workspace and a workspace that does not exist get the
    same answer, explanation included."""
    pairs = [
        (
            ws_check("user:alice", "gx-main", "see_flows", explain=True),
            ws_check("user:alice", "no-such-workspace", "see_flows", explain=True),
        ),
        (org_check("user:alice", "globex", "read:account"), org_check("user:alice", "no-such-org", "read:account")),
    ]
    for real, missing in pairs:
        real.explain = missing.explain = True
        a, b = await authz.Check(real), await authz.Check(missing)
        assert (a.allowed, list(a.reasons)) == (b.allowed, list(b.reasons)) == (False, list(a.reasons))
        assert a.reasons


# -- BatchCheck --------------------------------------------------------------------------------


async def test_batch_check_keeps_request_order(authz: Stub, rev: int) -> None:
    cases = [(org_check(s, o, p), e) for s, o, p, e in ORG_LEVEL]
    cases += [
        (ws_check(f"user:l-{role.lower()}", "acme-ladder", row[0]), row[1 + i])
        for row in LADDER
        for i, role in enumerate(ROLES)
    ]
    # Interleave allows and denials so that a reordering cannot pass by luck.
    allowed = [c for c in cases if c[1]]
    denied = [c for c in cases if not c[1]]
    mixed = [c for pair in zip(allowed, denied, strict=False) for c in pair]
    got = await authz.BatchCheck(pb.BatchCheckRequest(items=[r for r, _ in mixed]))
    assert [r.allowed for r in got.results] == [e for _, e in mixed]
    assert all(r.revision >= rev for r in got.results)


async def test_batch_check_answers_1000_items_and_rejects_1001(authz: Stub, rev: int) -> None:
    items = [ws_check("user:bob" if i % 2 else "user:erin", "acme-prod", "manage_flows") for i in range(1000)]
    got = await authz.BatchCheck(pb.BatchCheckRequest(items=items))
    assert [r.allowed for r in got.results] == [bool(i % 2) for i in range(1000)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await authz.BatchCheck(pb.BatchCheckRequest(items=[*items, items[0]]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items" in (raised.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await authz.BatchCheck(pb.BatchCheckRequest(items=[]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_batch_check_names_the_bad_item(authz: Stub, rev: int) -> None:
    items = [ws_check("user:bob", "acme-prod", "see_flows")] * 3 + [ws_check("user:bob", "acme-prod", "fly")]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await authz.BatchCheck(pb.BatchCheckRequest(items=items))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items[3].scope" in (raised.value.details() or "")


# -- ListAccessibleWorkspaces --------------------------------------------------------------------


async def _all_pages(authz: Stub, subject: str, page_size: int) -> list[list[pb.AccessibleWorkspace]]:
    pages: list[list[pb.AccessibleWorkspace]] = []
    token = ""
    while True:
        got = await authz.ListAccessibleWorkspaces(
            pb.ListAccessibleWorkspacesRequest(subject=subject, page_size=page_size, page_token=token)
        )
        pages.append(list(got.workspaces))
        token = got.next_page_token
        if not token:
            return pages
        assert len(pages) < 50, "paging does not end"


async def test_list_accessible_workspaces_pages_with_tokens(authz: Stub, rev: int) -> None:
    pages = await _all_pages(authz, "user:alice", page_size=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [w.workspace for p in pages for w in p] == ACME_WORKSPACES
    assert {w.organization for p in pages for w in p} == {"acme"}
    for w in (w for p in pages for w in p):
        assert set(w.scopes) == await scopes_of(authz, "user:alice", w.workspace)
    # One page of the default size holds them all.
    assert [len(p) for p in await _all_pages(authz, "user:alice", page_size=0)] == [5]


async def test_list_accessible_workspaces_across_organizations(authz: Stub, rev: int) -> None:
    # bob: Developer grant and Viewer default in acme-prod, acme-secrets default in acme-vault,
    # Owner default in Globex; nothing in the others.
    got = [(w.organization, w.workspace) for p in await _all_pages(authz, "user:bob", 1) for w in p]
    assert got == [("acme", "acme-prod"), ("acme", "acme-vault"), ("globex", "gx-main")]
    # R17: a service account goes only where it was given a role.
    got = [w.workspace for p in await _all_pages(authz, "service_account:ci-bot", 10) for w in p]
    assert got == ["acme-prod"]
    assert await _all_pages(authz, "service_account:audit-bot", 10) == [[]]
    assert await _all_pages(authz, "user:ghost", 10) == [[]]


async def test_list_accessible_workspaces_rejects_a_forged_token(authz: Stub, rev: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await authz.ListAccessibleWorkspaces(
            pb.ListAccessibleWorkspacesRequest(subject="user:alice", page_token="not a token!")
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (raised.value.details() or "")


# -- min_revision --------------------------------------------------------------------------------


async def test_min_revision_sees_a_write_committed_behind_the_servers_back(
    app: App, authz: Stub, rev: int, policy: PolicySet
) -> None:
    assert not (await authz.Check(ws_check("user:erin", "acme-empty", "manage_flows"))).allowed
    changed = {
        **ACME_RULES,
        "workspaces": [
            *ACME_RULES["workspaces"][:3],
            {"id": "acme-empty", "handle": "empty", "access": [{"subject": "user:erin", "role": "Developer"}]},
            ACME_RULES["workspaces"][4],
        ],
    }
    assert app.db is not None
    new_rev = seed(app.db, policy, {"organizations": [changed]})
    assert new_rev > rev
    got = await authz.Check(ws_check("user:erin", "acme-empty", "manage_flows", min_revision=new_rev))
    assert got.allowed
    assert got.revision >= new_rev
    batch = await authz.BatchCheck(
        pb.BatchCheckRequest(items=[ws_check("user:erin", "acme-empty", "manage_flows")], min_revision=new_rev)
    )
    assert batch.results[0].allowed


@pytest.fixture
async def impatient_authz(store_url: str) -> AsyncIterator[tuple[App, Stub]]:
    """A server that waits only 0.2 s for a min_revision it has not reached."""
    server = App(settings_for(store_url, min_revision_wait_s=0.2))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            yield server, authorization_pb2_grpc.AuthorizationServiceStub(ch)
    finally:
        await server.stop(0)


async def test_min_revision_far_ahead_is_unavailable_after_the_wait(
    impatient_authz: tuple[App, Stub], policy: PolicySet
) -> None:
    app, authz = impatient_authz
    assert app.db is not None
    rev = seed(app.db, policy, DOC)
    ahead = rev + 1_000_000
    requests = [
        authz.Check(ws_check("user:alice", "acme-prod", "see_flows", min_revision=ahead)),
        authz.BatchCheck(
            pb.BatchCheckRequest(items=[ws_check("user:alice", "acme-prod", "see_flows")], min_revision=ahead)
        ),
        authz.ListScopes(pb.ListScopesRequest(subject="user:alice", workspace="acme-prod", min_revision=ahead)),
        authz.ListAccessibleWorkspaces(pb.ListAccessibleWorkspacesRequest(subject="user:alice", min_revision=ahead)),
    ]
    for call in requests:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "min_revision" in (raised.value.details() or "")
    # The server is still fine, and at the revision it has.
    got = await authz.Check(ws_check("user:alice", "acme-prod", "see_flows", min_revision=rev))
    assert got.allowed
    assert got.revision >= rev
    assert snapshots.head_revision(app.db) == rev


# -- health and reflection ----------------------------------------------------------------------


async def test_health_is_serving_and_reflection_lists_the_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", AUTHZ):
        got = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert got.status == health_pb2.HealthCheckResponse.SERVING
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    names = {s.name for r in [r async for r in call] for s in r.list_services_response.service}
    assert AUTHZ in names
    assert "grpc.health.v1.Health" in names
