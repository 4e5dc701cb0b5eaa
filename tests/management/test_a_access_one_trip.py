"""Grant, change and revoke in one PostgreSQL round trip (SPEC §3, §5).

A replica that has applied every revision it knows of decides an access write on its own
engine's state and sends it in one query string; the database refuses it (SQLSTATE OZ409)
unless the head revision and the rows the write checks are exactly what it was decided on,
and the write is then decided again on what the database holds. These tests hold each half:
the fast path is taken, a wrong guess of rows or of the head never commits, and a connection
that fails around the COMMIT neither loses nor doubles the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import psycopg
import pytest
from sqlalchemy.engine import make_url

from orgauthz.api.server import App
from orgauthz.services import access
from orgauthz.store.db import Database
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.support_a import As, add_member, allowed, code, create_org, head, two_servers

C = grpc.StatusCode
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("store_url", ["postgres"], indirect=True)]


async def _setup(app: App, channel: grpc.aio.Channel) -> As:
    await create_org(channel)
    for user in ("bob", "carol"):
        await add_member(app, "acme", user)
    alice = As.of(channel, "user:alice")
    for ws in ("w1", "w2"):
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id=ws, handle=ws))
    return alice


@asynccontextmanager
async def _serving(settings: Any) -> AsyncIterator[tuple[App, grpc.aio.Channel, As]]:
    """A running server, a channel to it, and Alice acting in the set-up organization."""
    app = App(settings)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, channel, await _setup(app, channel)
    finally:
        await app.stop(0)


def _counts(app: App) -> tuple[int, int]:
    assert app.db is not None
    return app.db.one_trip_writes, app.db.expectations_missed


def _grant(ws: str, subject: str, role: str) -> pb.GrantWorkspaceAccessRequest:
    return pb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role)


def _revoke(ws: str, subject: str) -> pb.RevokeWorkspaceAccessRequest:
    return pb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject)


async def _revoked_role(alice: As) -> str:
    events = await alice.audit.ListAuditEvents(
        pb.ListAuditEventsRequest(organization="acme", event="orgauthz.workspace-access.revoked")
    )
    return str(events.events[-1].details["role"])


async def test_s3_a_current_replica_sends_grant_change_and_revoke_in_one_round_trip(store_url: str) -> None:
    async with _serving(settings_for(store_url)) as (app, channel, alice):
        one, missed = _counts(app)
        start = head(app)
        r = await alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"))
        assert r.revision == start + 1
        assert await allowed(channel, "user:bob", "see_flows", workspace="w2")
        assert not await allowed(channel, "user:bob", "manage_flows", workspace="w2")
        await alice.access.ChangeWorkspaceAccess(
            pb.ChangeWorkspaceAccessRequest(workspace="w2", subject="user:bob", role="Developer")
        )
        assert await allowed(channel, "user:bob", "manage_flows", workspace="w2")
        await alice.access.RevokeWorkspaceAccess(_revoke("w2", "user:bob"))
        assert not await allowed(channel, "user:bob", "see_flows", workspace="w2")
        assert head(app) == start + 3
        assert _counts(app) == (one + 3, missed)
        sample = app.metrics.registry.get_sample_value
        assert sample("orgauthz_access_writes", {"path": "one_trip"}) == one + 3
        assert sample("orgauthz_access_writes", {"path": "decided_again"}) == missed
        assert await _revoked_role(alice) == "Developer"
        # Refusals are decided on what the database holds, and write nothing.
        assert await code(alice.access.RevokeWorkspaceAccess(_revoke("w2", "user:bob"))) == C.NOT_FOUND
        assert await code(alice.access.GrantWorkspaceAccess(_grant("w2", "user:dan", "Viewer"))) == (
            C.FAILED_PRECONDITION
        )
        assert head(app) == start + 3


async def test_s3_a_wrong_guess_of_the_rows_is_refused_and_decided_again(store_url: str, monkeypatch) -> None:
    """Were the guessed role committed, the revoke would remove a ``Viewer`` line and leave
    Bob's ``Developer`` grant in the engine: an "allow" after a revoke."""
    async with _serving(settings_for(store_url)) as (app, channel, alice):
        await alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Developer"))
        one, missed = _counts(app)
        start = head(app)

        def wrong(mgmt: Any, ws: Any, subject: str, role: str) -> list[tuple[Any, ...]]:
            return [(ws.id, "Viewer", None, None)]

        monkeypatch.setattr(access, "_guess_grant_of", wrong)
        await alice.access.RevokeWorkspaceAccess(_revoke("w2", "user:bob"))
        assert not await allowed(channel, "user:bob", "manage_flows", workspace="w2")
        assert not await allowed(channel, "user:bob", "see_flows", workspace="w2")
        assert await _revoked_role(alice) == "Developer"
        assert head(app) == start + 1
        assert _counts(app) == (one, missed + 1)


async def test_s3_a_guess_at_a_stale_head_is_refused_and_decided_again(store_url: str) -> None:
    """Replica ``a`` has not heard of ``b``'s write: its guess of Bob's rows is right, its
    head is not. Committed as guessed, the write would reuse ``b``'s revision."""
    async with two_servers(settings_for(store_url)) as (a, b, ch_a, ch_b):
        alice_a = await _setup(a, ch_a)
        await b.feed.poll()
        alice_b = As.of(ch_b, "user:alice")
        await alice_b.access.GrantWorkspaceAccess(_grant("w1", "user:carol", "Viewer"))
        one, missed = _counts(a)
        start = head(a)
        r = await alice_a.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"))
        assert r.revision == start + 1
        assert _counts(a) == (one, missed + 1)
        assert await allowed(ch_a, "user:bob", "see_flows", workspace="w2")
        assert await allowed(ch_a, "user:carol", "see_flows", workspace="w1")
        # Caught up again: the next write goes in one round trip.
        await alice_a.access.RevokeWorkspaceAccess(_revoke("w2", "user:bob"))
        assert _counts(a) == (one + 1, missed + 1)
        assert not await allowed(ch_a, "user:bob", "see_flows", workspace="w2")


def _still_running(store_url: str, seconds: float) -> tuple[Any, list[Any]]:
    """A ``Database._send`` whose first call hands the query string to another connection,
    which takes the lock, sleeps ``seconds`` and then carries it out, and then fails as a
    dropped connection would; later calls send as usual. Also the list of what it started."""
    conninfo = make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)
    running: list[Any] = []
    send = Database._send

    async def failing(self: Database, cursor: Any, sql: str) -> None:
        if running:
            return await send(self, cursor, sql)
        other = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        before, expect, after = sql.partition(";SELECT orgauthz_expect")
        delayed = f"{before};SELECT pg_sleep({seconds}){expect}{after}"
        running.append((other, asyncio.create_task(other.execute(delayed))))
        await asyncio.sleep(0.1)  # it holds the lock
        raise psycopg.OperationalError("connection failed (test)")

    return failing, running


async def _finish(running: list[Any]) -> None:
    for other, task in running:
        await task
        await other.close()


async def _grant_through(app: App, monkeypatch: Any, send: Any) -> tuple[As, grpc.aio.Channel, int]:
    """Bob is granted Viewer in w2 with ``send`` in place of ``Database._send``; the grant is
    answered OK at the next revision, which the database holds, and is reflected here."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    alice = await _setup(app, channel)
    start = head(app)
    monkeypatch.setattr(Database, "_send", send)
    r = await alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"))
    assert r.revision == start + 1
    assert head(app) == start + 1
    assert await allowed(channel, "user:bob", "see_flows", workspace="w2")
    return alice, channel, start


@pytest.mark.parametrize("committed", [True, False], ids=["after-commit", "before-send"])
async def test_s3_a_connection_failing_around_the_commit_neither_loses_nor_doubles_the_write(
    store_url: str, monkeypatch, committed: bool
) -> None:
    """The connection fails after the one query string was carried out, or before it was
    sent: either way the grant is answered OK, commits once, and is reflected here."""
    app = App(settings_for(store_url))
    await app.start()
    send = Database._send
    failures = []

    async def failing(self: Database, cursor: Any, sql: str) -> None:
        if not failures:
            failures.append(sql)
            if committed:
                await send(self, cursor, sql)
            raise psycopg.OperationalError("connection failed (test)")
        await send(self, cursor, sql)

    try:
        alice, channel, _ = await _grant_through(app, monkeypatch, failing)
        assert failures
        assert await code(alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"))) == C.ALREADY_EXISTS
        events = await alice.audit.ListAuditEvents(
            pb.ListAuditEventsRequest(organization="acme", event="orgauthz.workspace-access.granted")
        )
        assert [e.target for e in events.events].count("user:bob") == 1
        await channel.close()
    finally:
        await app.stop(0)


async def test_s3_a_write_still_running_on_a_failed_connection_is_waited_for_not_redone(
    store_url: str, monkeypatch
) -> None:
    """The connection fails while the database is still carrying the query string out (it
    holds the write lock, then commits): whether it committed is read under the lock, so
    the grant is answered OK, not redone and answered ALREADY_EXISTS."""
    app = App(settings_for(store_url))
    await app.start()
    failing, running = _still_running(store_url, 0.5)
    try:
        _, channel, _ = await _grant_through(app, monkeypatch, failing)
        assert running
        await channel.close()
    finally:
        await _finish(running)
        await app.stop(0)


async def test_s3_another_replicas_write_at_the_same_revision_is_not_taken_for_this_one(
    store_url: str, monkeypatch
) -> None:
    """The connection fails before the grant is sent, and meanwhile replica ``b`` commits a
    grant of its own in the same organization at the revision this one expected: the
    ``changes`` row there is not this write's (its time and payload differ), so the grant is
    decided again and commits at the next revision."""
    send = Database._send
    async with two_servers(settings_for(store_url)) as (a, b, ch_a, ch_b):
        alice_a = await _setup(a, ch_a)
        await b.feed.poll()
        alice_b = As.of(ch_b, "user:alice")
        start = head(a)
        interleaved = []

        async def failing(self: Database, cursor: Any, sql: str) -> None:
            if self is a.db and not interleaved:
                interleaved.append(await alice_b.access.GrantWorkspaceAccess(_grant("w1", "user:carol", "Viewer")))
                raise psycopg.OperationalError("connection failed (test)")
            await send(self, cursor, sql)

        monkeypatch.setattr(Database, "_send", failing)
        r = await alice_a.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"))
        assert interleaved[0].revision == start + 1
        assert r.revision == start + 2
        assert head(a) == start + 2
        assert await allowed(ch_a, "user:bob", "see_flows", workspace="w2")
        assert await allowed(ch_a, "user:carol", "see_flows", workspace="w1")


async def test_s3_a_write_cancelled_while_settling_leaves_its_connection_usable(store_url: str, monkeypatch) -> None:
    """The connection fails while the database still carries the write out (holding the
    lock), and the caller's deadline passes while this replica waits for the lock to read
    what happened: the event loop's connection is not left inside a failed transaction."""
    failing, running = _still_running(store_url, 1.5)

    # The feed's poll would otherwise find a broken connection first, and replace it.
    async with _serving(settings_for(store_url, poll_interval_s=60)) as (app, channel, alice):
        try:
            monkeypatch.setattr(Database, "_send", failing)
            assert await code(alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"), timeout=0.5)) == (
                C.DEADLINE_EXCEEDED
            )
            await asyncio.sleep(0.1)  # the handler's cancellation has run
            assert app.db is not None
            loop_conn = app.db._loop_conn
            assert loop_conn is None or loop_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        finally:
            await _finish(running)
        # The grant committed on the other connection; this replica catches up and writes on.
        await app.feed.poll()
        assert await allowed(channel, "user:bob", "see_flows", workspace="w2")
        await alice.access.RevokeWorkspaceAccess(_revoke("w2", "user:bob"))
        assert not await allowed(channel, "user:bob", "see_flows", workspace="w2")


async def test_s3_without_migration_0002_access_writes_take_two_round_trips(store_url: str) -> None:
    """A database migrated by an older orgauthz (``ORGAUTHZ_MIGRATE=false``) has no
    ``orgauthz_expect``: the first write finds out, and every write takes two round trips."""
    conninfo = make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DROP FUNCTION orgauthz_expect(boolean)")
    async with _serving(settings_for(store_url, migrate=False)) as (app, channel, alice):
        one, missed = _counts(app)
        start = head(app)
        await alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Viewer"))
        await alice.access.RevokeWorkspaceAccess(_revoke("w2", "user:bob"))
        await alice.access.GrantWorkspaceAccess(_grant("w2", "user:bob", "Developer"))
        assert await allowed(channel, "user:bob", "manage_flows", workspace="w2")
        assert head(app) == start + 3
        assert _counts(app) == (one, missed + 1)  # tried once, then not again
