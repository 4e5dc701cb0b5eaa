"""Tenant isolation (SPEC §2 "Nothing of one organization is visible to an actor of another").

A generated two-organization world. Every actor of organization A (an Admin, a Member, a
workspace Owner, a member with a custom organization role, a service account with its
key) calls every management RPC (enumerated from the descriptors) naming each resource of
organization B — ids copied from B's own list results — in each field that can name one.
Each call is paired with the same call naming an id that exists nowhere:

- the status and the message are identical (the id written as ``<id>``), so nothing
  confirms that B's resource exists;
- a successful answer carries nothing of B;
- B's rows in every table are unchanged at the end.

The decision API is checked the same way: A's subjects are denied everything in B, and
B's workspaces look exactly like workspaces that do not exist.

One documented exception: resource ids are chosen by the platform and unique across
organizations, so a *create* that names an id taken anywhere answers ALREADY_EXISTS
and says nothing more.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import grpc
import pytest
from sqlalchemy import inspect, text

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import service_accounts_pb2 as spb
from tests.support.rpcs import (
    MANAGEMENT,
    C,
    OrgWorld,
    Rpc,
    actor,
    all_rpcs,
    build_world,
    call,
    key,
)

STATS: Counter[str] = Counter()


def b_rows(app: App) -> dict[str, list[str]]:
    """Every row that belongs to organization B (its org_id), B itself, and B's users."""
    assert app.db is not None
    out: dict[str, list[str]] = {}
    with app.db.engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            cols = {c["name"] for c in inspect(conn).get_columns(table)}
            where = (
                "org_id = 'b'"
                if "org_id" in cols
                else "id = 'b'"
                if table == "organizations"
                else "id LIKE 'b-%'"
                if table == "users"
                else None
            )
            if where:
                out[table] = sorted(
                    repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}" WHERE {where}'))
                )
    assert out["workspaces"]
    assert out["memberships"]
    assert out["api_keys"]
    assert out["invitations"]
    return out


async def listed_by_b(channel: grpc.aio.Channel, world: OrgWorld) -> dict[str, list[str]]:
    """B's resource ids as B's own Admin lists them."""
    md = actor("b-admin")
    stubs = {r.short: r for r in MANAGEMENT}

    async def ask(name: str, req: Any) -> Any:
        out = await call(channel, stubs[name], req, md)
        assert out.code == C.OK, (name, out.details)
        return out.response

    ws = await ask("WorkspaceService.ListWorkspaces", mpb.ListWorkspacesRequest(organization="b"))
    members = await ask("MemberService.ListMembers", mpb.ListMembersRequest(organization="b"))
    roles = await ask("RoleService.ListRoles", mpb.ListRolesRequest(organization="b"))
    sas = await ask("ServiceAccountService.ListServiceAccounts", spb.ListServiceAccountsRequest(organization="b"))
    inv = await ask("InvitationService.ListInvitations", ipb.ListInvitationsRequest(organization="b"))
    access = await ask("AccessService.ListWorkspaceAccess", mpb.ListWorkspaceAccessRequest(workspace="b-ws1"))
    out = {
        "organization": ["b"],
        "workspace": [w.id for w in ws.workspaces],
        "user": [m.user_id for m in members.members],
        "role": [r.id for r in roles.roles if not r.builtin],
        "service_account": [s.id for s in sas.service_accounts],
        "invitation": [i.id for i in inv.invitations],
        "subject": sorted(
            {a.subject for a in access.access} | {f"service_account:{s.id}" for s in sas.service_accounts}
        ),
        "email": [i.email for i in inv.invitations] + [m.email for m in members.members],
    }
    assert set(out["workspace"]) == set(world.workspaces)
    assert set(out["invitation"]) == set(world.invitations)
    return out


def candidates(rpc: Rpc, field: str, b: dict[str, list[str]]) -> list[str]:
    """B's values a field of this RPC can name."""
    svc = rpc.service.rpartition(".")[2]
    if field == "organization":
        return b["organization"]
    if field == "workspace":
        return b["workspace"]
    if field in ("user_id",):
        return b["user"]
    if field in ("subject", "actor"):
        return b["subject"]
    if field in ("role", "inherits", "default_role", "org_role"):
        return b["role"]
    if field in ("email", "emails"):
        return b["email"][:2]
    if field == "id":
        return {
            "ServiceAccountService": b["service_account"],
            "InvitationService": b["invitation"],
            "WorkspaceService": b["workspace"],
            "RoleService": b["role"],
            "OrganizationService": b["organization"],
        }.get(svc, [])
    return []


_twins = iter(range(10**9))


def twin(value: str) -> str:
    """An id of the same shape that names nothing (fresh each time: a create may take it)."""
    n = next(_twins)
    kind, sep, ident = value.partition(":")
    if sep and kind in ("user", "service_account"):
        return f"{kind}:{ident}-x{n}"
    if "@" in value:
        return f"zz{n}{value}"
    return f"{value}-x{n}"


def base_request(rpc: Rpc) -> dict[str, Any]:
    """A well-formed request of organization A for ``rpc``: only the field under test will name B."""
    svc = rpc.service.rpartition(".")[2]
    role = {
        "AccessService": "Viewer",
        "MemberService": "Member",
        "RoleService": "a-wsrole",
        "WorkspaceService": "Viewer",
    }.get(svc, "Member")
    values: dict[str, Any] = {
        "organization": "a",
        "workspace": "a-ws1",
        "user_id": "a-member",
        "subject": "user:a-member",
        "role": role,
        "org_role": "Member",
        "default_role": "",
        "inherits": "",
        "level": "workspace",
        "name": "iso-name",
        "handle": "iso-handle",
        "scopes": ["see_flows"],
        "emails": ["iso@a.test"],
        "email": "iso@a.test",
        "admin_user_id": "a-admin",
        "id": "",
    }
    fields = rpc.input.fields_by_name
    out = {k: v for k, v in values.items() if k in fields}
    if "id" in fields and svc == "ServiceAccountService" and not rpc.name.startswith("Create"):
        out["id"] = "a-sa-ci"
    if "id" in fields and svc == "InvitationService":
        out["id"] = "nope"
    if "token" in fields:
        out["token"] = "T" * 43
    return out


def make(rpc: Rpc, values: dict[str, Any]) -> Any:
    msg = rpc.request_class()()
    for name, value in values.items():
        if isinstance(value, list):
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


def actors(world: dict[str, OrgWorld]) -> dict[str, list[tuple[str, str]]]:
    return {
        "A Admin": actor("a-admin"),
        "A Member": actor("a-member"),
        "A Owner": actor("a-owner"),
        "A custom role": actor("a-manager"),
        "A service account": key(world["a"].service_accounts["a-sa-bot"]),
    }


@pytest.fixture
async def world(app: App, channel: grpc.aio.Channel, policy: PolicySet) -> dict[str, OrgWorld]:
    return await build_world(app, channel, policy)


async def test_s2_an_actor_of_a_learns_and_changes_nothing_of_b(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    STATS.clear()
    b = await listed_by_b(channel, world["b"])
    b_values = {v for vs in b.values() for v in vs if v != "b"}
    before = b_rows(app)
    for who, md in actors(world).items():
        for rpc in MANAGEMENT:
            for field in rpc.input.fields_by_name:
                for value in candidates(rpc, field, b):
                    base, other = base_request(rpc), twin(value)
                    real = {**base, field: [value] if field == "emails" else value}
                    fake = {**base, field: [other] if field == "emails" else other}
                    got = await call(channel, rpc, make(rpc, real), md)
                    ref = await call(channel, rpc, make(rpc, fake), md)
                    STATS["pairs"] += 1
                    STATS[got.code.name] += 1
                    where = f"{who} {rpc.short}({field}={value!r})"
                    if rpc.name.startswith("Create") and field == "id" and got.code == C.ALREADY_EXISTS:
                        # The documented exception: ids are global. The message tells nothing more.
                        assert not [v for v in b_values if v != value and v in got.details], where
                        STATS["global id taken"] += 1
                        continue
                    assert got.code == ref.code, f"{where}: {got.code.name} vs {ref.code.name} for a missing id"
                    assert got.details.replace(value, "<id>") == ref.details.replace(other, "<id>"), (
                        f"{where}: {got.details!r} vs {ref.details!r}"
                    )
                    if got.code == C.OK:
                        shown = str(got.response)
                        leaked = [v for v in b_values if v != value and v in shown]
                        assert not leaked, f"{where} answered with B's {leaked}"
    assert b_rows(app) == before
    print(
        f"\n[isolation] {STATS['pairs']} call pairs (B's id vs an id that exists nowhere) by 5 actors of A "
        f"over {len(MANAGEMENT)} management RPCs: {dict(STATS)}; B's rows unchanged"
    )


async def test_s2_decisions_for_a_subjects_in_b_are_plain_denies(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld], policy: PolicySet
) -> None:
    rpcs = {r.short: r for r in all_rpcs()}
    a_subjects = world["a"].subjects
    scopes = sorted(policy.workspace_scopes)[:8]
    n = 0
    for subject in a_subjects:
        for ws in world["b"].workspaces:
            for scope in scopes:
                real = await call(
                    channel,
                    rpcs["AuthorizationService.Check"],
                    apb.CheckRequest(subject=subject, workspace=ws, scope=scope),
                )
                fake = await call(
                    channel,
                    rpcs["AuthorizationService.Check"],
                    apb.CheckRequest(subject=subject, workspace=twin(ws), scope=scope),
                )
                assert real.code == fake.code == C.OK
                assert not real.response.allowed and not fake.response.allowed, (subject, ws, scope)  # noqa: PT018  # one answer, both fields
                assert real.response == fake.response  # same revision too: nothing tells them apart
                n += 1
            listed = await call(
                channel, rpcs["AuthorizationService.ListScopes"], apb.ListScopesRequest(subject=subject, workspace=ws)
            )
            assert listed.code == C.OK
            assert list(listed.response.scopes) == []
        perm = await call(
            channel,
            rpcs["AuthorizationService.Check"],
            apb.CheckRequest(subject=subject, organization="b", scope="read:account"),
        )
        assert perm.code == C.OK
        assert not perm.response.allowed
        where = await call(
            channel,
            rpcs["AuthorizationService.ListAccessibleWorkspaces"],
            apb.ListAccessibleWorkspacesRequest(subject=subject),
        )
        assert where.code == C.OK
        assert not {w.workspace for w in where.response.workspaces} & set(world["b"].workspaces)
    print(f"\n[isolation] {n} Checks of A's subjects on B's workspaces: all denied, same as on missing workspaces")
