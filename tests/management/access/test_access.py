"""Workspace access through gRPC: R16, R18."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.support import (
    As,
    add_member,
    add_service_account,
    allowed,
    code,
    create_org,
    head,
    two_servers,
)

C = grpc.StatusCode


async def _setup(app: App, channel) -> As:
    await create_org(channel)
    await create_org(channel, "globex", "gina")
    for user in ("owner", "dev", "bob"):
        await add_member(app, "acme", user)
    await add_service_account(app, "acme", "robot")
    alice = As.of(channel, "user:alice")
    for ws in ("w1", "w2"):
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w1", subject="user:owner", role="Owner")
    )
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w1", subject="user:dev", role="Developer")
    )
    return alice


async def test_grant_change_revoke(app: App, channel) -> None:
    alice = await _setup(app, channel)
    r = await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w2", subject="service_account:robot", role="Worker")
    )
    assert r.access.role == "Worker"
    assert r.revision > 0
    assert await allowed(channel, "service_account:robot", "submit_flow_runs", workspace="w2")
    assert not await allowed(channel, "service_account:robot", "manage_flows", workspace="w2")
    assert (
        await code(
            alice.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w2", subject="service_account:robot", role="Viewer")
            )
        )
        == C.ALREADY_EXISTS
    )
    r2 = await alice.access.ChangeWorkspaceAccess(
        pb.ChangeWorkspaceAccessRequest(workspace="w2", subject="service_account:robot", role="Developer")
    )
    assert r2.revision > r.revision
    assert await allowed(channel, "service_account:robot", "manage_flows", workspace="w2")
    await alice.access.RevokeWorkspaceAccess(
        pb.RevokeWorkspaceAccessRequest(workspace="w2", subject="service_account:robot")
    )
    assert not await allowed(channel, "service_account:robot", "see_flows", workspace="w2")
    assert (
        await code(
            alice.access.RevokeWorkspaceAccess(
                pb.RevokeWorkspaceAccessRequest(workspace="w2", subject="service_account:robot")
            )
        )
        == C.NOT_FOUND
    )
    assert (
        await code(
            alice.access.ChangeWorkspaceAccess(
                pb.ChangeWorkspaceAccessRequest(workspace="w2", subject="service_account:robot", role="Viewer")
            )
        )
        == C.NOT_FOUND
    )


async def test_r16_outsider_cannot_be_granted(app: App, channel) -> None:
    alice = await _setup(app, channel)
    before = head(app)
    for subject in ("user:gina", "user:nobody", "service_account:nothing"):
        assert (
            await code(
                alice.access.GrantWorkspaceAccess(
                    pb.GrantWorkspaceAccessRequest(workspace="w1", subject=subject, role="Viewer")
                )
            )
            == C.FAILED_PRECONDITION
        )
    assert head(app) == before
    assert not await allowed(channel, "user:gina", "see_flows", workspace="w1")


async def test_r16_owner_manages_only_own_workspace(app: App, channel) -> None:
    await _setup(app, channel)
    owner, dev = As.of(channel, "user:owner"), As.of(channel, "user:dev")
    assert (
        await code(
            owner.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w1", subject="user:bob", role="Runner")
            )
        )
        == C.OK
    )
    assert await allowed(channel, "user:bob", "run_deployments", workspace="w1")
    assert (
        await code(
            owner.access.ChangeWorkspaceAccess(
                pb.ChangeWorkspaceAccessRequest(workspace="w1", subject="user:bob", role="Viewer")
            )
        )
        == C.OK
    )
    assert (
        await code(
            owner.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w2", subject="user:bob", role="Runner")
            )
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await code(owner.access.ListWorkspaceAccess(pb.ListWorkspaceAccessRequest(workspace="w2")))
        == C.PERMISSION_DENIED
    )
    # A Developer may see who has access (see_workspace_users) but not change it.
    r = await dev.access.ListWorkspaceAccess(pb.ListWorkspaceAccessRequest(workspace="w1"))
    assert [a.subject for a in r.access] == ["user:bob", "user:dev", "user:owner"]
    assert (
        await code(
            dev.access.RevokeWorkspaceAccess(pb.RevokeWorkspaceAccessRequest(workspace="w1", subject="user:bob"))
        )
        == C.PERMISSION_DENIED
    )
    assert (
        await code(
            owner.access.RevokeWorkspaceAccess(pb.RevokeWorkspaceAccessRequest(workspace="w1", subject="user:bob"))
        )
        == C.OK
    )
    # A plain Member with no workspace role.
    bob = As.of(channel, "user:bob")
    assert (
        await code(
            bob.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w1", subject="user:bob", role="Owner")
            )
        )
        == C.PERMISSION_DENIED
    )


async def test_r18_union_of_default_and_granted_role(app: App, channel) -> None:
    alice = await _setup(app, channel)
    await alice.workspaces.SetDefaultRole(pb.SetDefaultRoleRequest(workspace="w2", role="Viewer"))
    await alice.access.GrantWorkspaceAccess(
        pb.GrantWorkspaceAccessRequest(workspace="w2", subject="user:bob", role="Worker")
    )
    assert await allowed(channel, "user:bob", "see_flows", workspace="w2")  # from the default
    assert await allowed(channel, "user:bob", "write_workers", workspace="w2")  # from the grant


async def test_list_access_pages(app: App, channel) -> None:
    alice = await _setup(app, channel)
    for i in range(5):
        await add_member(app, "acme", f"u{i}")
        await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w2", subject=f"user:u{i}", role="Viewer")
        )
    seen, token = [], ""
    while True:
        r = await alice.access.ListWorkspaceAccess(
            pb.ListWorkspaceAccessRequest(workspace="w2", page_size=2, page_token=token)
        )
        seen += [a.subject for a in r.access]
        if not (token := r.next_page_token):
            break
    assert seen == [f"user:u{i}" for i in range(5)]


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_racing_grants_and_revokes_of_one_subject_each_happen_once(store_url: str) -> None:
    """What a grant or revoke checks is read under the write lock: of eight identical
    requests racing, exactly one changes anything; the others are told why not."""
    app = App(settings_for(store_url))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            alice = await _setup(app, channel)
            for _ in range(3):
                start = head(app)
                grants = await asyncio.gather(
                    *[
                        code(
                            alice.access.GrantWorkspaceAccess(
                                pb.GrantWorkspaceAccessRequest(workspace="w2", subject="user:bob", role="Viewer")
                            )
                        )
                        for _ in range(8)
                    ]
                )
                assert sorted(grants, key=str) == sorted([C.OK] + [C.ALREADY_EXISTS] * 7, key=str)
                assert head(app) == start + 1
                assert await allowed(channel, "user:bob", "see_flows", workspace="w2")
                revokes = await asyncio.gather(
                    *[
                        code(
                            alice.access.RevokeWorkspaceAccess(
                                pb.RevokeWorkspaceAccessRequest(workspace="w2", subject="user:bob")
                            )
                        )
                        for _ in range(8)
                    ]
                )
                assert sorted(revokes, key=str) == sorted([C.OK] + [C.NOT_FOUND] * 7, key=str)
                assert head(app) == start + 2
                assert not await allowed(channel, "user:bob", "see_flows", workspace="w2")
            events = await alice.audit.ListAuditEvents(
                pb.ListAuditEventsRequest(organization="acme", event="orgauthz.workspace-access.revoked")
            )
            assert len(events.events) == 3
    finally:
        await app.stop(0)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_access_writes_on_the_event_loop_survive_their_connection_dying(store_url: str, pg) -> None:
    """Grant, change and revoke run on the event loop's own PostgreSQL connection; when the
    database ends it (a restart, an operator), the next write reconnects instead of failing."""
    app = App(settings_for(store_url))
    await app.start()
    dbname = store_url.rsplit("/", 1)[1]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            alice = await _setup(app, channel)
            for role in ("Viewer", "Developer"):
                pg.psql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
                )
                await alice.access.GrantWorkspaceAccess(
                    pb.GrantWorkspaceAccessRequest(workspace="w2", subject="user:bob", role=role)
                )
                assert await allowed(channel, "user:bob", "see_flows", workspace="w2")
                await alice.access.RevokeWorkspaceAccess(
                    pb.RevokeWorkspaceAccessRequest(workspace="w2", subject="user:bob")
                )
                assert not await allowed(channel, "user:bob", "see_flows", workspace="w2")
    finally:
        await app.stop(0)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_racing_revokes_through_two_servers_each_happen_once(store_url: str) -> None:
    """Two servers on one database (replicas): their event-loop writes are serialized only
    by the database's write lock, under which each reads what it checks."""
    async with two_servers(settings_for(store_url)) as (a, b, ch_a, ch_b):
        alice_a = await _setup(a, ch_a)
        alice_b = As.of(ch_b, "user:alice")
        await b.feed.poll()
        for _ in range(4):
            await alice_a.access.GrantWorkspaceAccess(
                pb.GrantWorkspaceAccessRequest(workspace="w2", subject="user:bob", role="Viewer")
            )
            await b.feed.poll()
            start = head(a)
            request = pb.RevokeWorkspaceAccessRequest(workspace="w2", subject="user:bob")
            codes = await asyncio.gather(
                *[code(alice.access.RevokeWorkspaceAccess(request)) for alice in (alice_a, alice_b) * 4]
            )
            assert sorted(codes, key=str) == sorted([C.OK] + [C.NOT_FOUND] * 7, key=str)
            assert head(a) == start + 1
