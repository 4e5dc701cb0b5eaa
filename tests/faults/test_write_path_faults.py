"""Faults the replica tests (tests/faults/test_replica_faults.py: Redis and PostgreSQL stopped and
restarted mid-stream, a reading replica killed) do not already inject:

- the SMTP server stopped mid-workload and started again: no invitation email is lost;
- the replica taking the writes killed with SIGKILL while writes are in flight: every
  acknowledged write is in the store, the other replica serves exactly the store, and the
  killed replica restarts and agrees;
- a slow database (a TCP proxy delaying every PostgreSQL packet): writes are slower but
  none is lost or wrong, Checks keep answering from memory, and the store health is
  SERVING again once the delay is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.store.importer import import_document
from orgauthz.store.models import Outbox, WorkspaceGrant
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from tests.conftest import settings_for
from tests.replicas.conftest import replicas  # noqa: F401  # the replica-process fixture, reused
from tests.replicas.harness import Replica
from tests.support.orgs import ACME_FAULTS, doc
from tests.support.rpcs import actor
from tests.support.services import PgCluster, free_port

C = grpc.StatusCode
_n = itertools.count()
ROLE_SCOPES = {None: set(), "Viewer": {"see_flows"}, "Developer": {"see_flows", "manage_flows"}}


@pytest.fixture
def pg_db(pg: PgCluster, policy: PolicySet) -> Iterator[str]:
    name = f"faults{next(_n)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    url = pg.url(name)
    app_db = __import__("orgauthz.store.db", fromlist=["open_store"]).open_store(url)
    import_document(app_db, policy, doc(ACME_FAULTS))
    app_db.dispose()
    yield url
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- SMTP -----------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        self.messages.append(envelope)
        return "250 OK"


async def test_r9_smtp_stopped_mid_workload_loses_no_invitation(pg_db: str) -> None:
    port, box = free_port(), Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    app = App(
        settings_for(
            pg_db,
            migrate=False,
            smtp_host="127.0.0.1",
            smtp_port=port,
            secret_key="k" * 32,
            outbox_poll_interval_s=0.1,
            outbox_retry_base_s=0.1,
            outbox_retry_max_s=0.5,
        )
    )
    await app.start()
    sent: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = ipbg.InvitationServiceStub(ch)
            for i in range(30):
                if i == 10:
                    smtp.stop()  # the mail server goes away mid-workload
                if i == 20:
                    smtp = Controller(box, hostname="127.0.0.1", port=port)
                    smtp.start()
                email = f"new{i}@example.test"
                r = await stub.CreateInvitations(
                    ipb.CreateInvitationsRequest(organization="acme", emails=[email]), metadata=actor("admin")
                )
                assert r.results[0].outcome == ipb.INVITATION_OUTCOME_INVITED
                assert not r.results[0].token
                sent.append(email)
                await asyncio.sleep(0.05)
            for _ in range(200):
                if {m for e in box.messages for m in e.rcpt_tos} >= set(sent):
                    break
                await asyncio.sleep(0.1)
        delivered = [m for e in box.messages for m in e.rcpt_tos]
        assert set(delivered) == set(sent), sorted(set(sent) - set(delivered))
        assert app.db is not None
        with app.db.read() as s:
            unsent = s.scalars(select(Outbox.id).where(Outbox.sent_at.is_(None))).all()
            failures = max(s.scalars(select(Outbox.attempts)).all())
        assert not unsent
        print(
            f"\n[faults] SMTP stopped for 10 of 30 invitations: all 30 delivered after restart "
            f"({len(delivered)} messages, at most {failures} attempts for one mail)"
        )
        assert failures >= 1
    finally:
        smtp.stop()
        await app.stop(0)


# -- SIGKILL mid-write ------------------------------------------------------------------------


async def test_s3_writing_replica_killed_mid_write_loses_no_acknowledged_write(pg_db: str, redis, replicas) -> None:  # noqa: F811  # the imported fixture
    a: Replica = replicas("a", pg_db, redis.url)
    b: Replica = replicas("b", pg_db, redis.url)
    acked: dict[tuple[str, str], str | None] = {}  # the last acknowledged role per key
    unknown: dict[tuple[str, str], str | None] = {}  # the write in flight when the replica died
    head = 0

    async def writer(ch: grpc.aio.Channel, k: int) -> None:
        """Owns users u{5k}..u{5k+4}: at most one write in flight per key."""
        nonlocal head
        rng, acc = random.Random(k), mpbg.AccessServiceStub(ch)
        while True:
            user, ws = f"u{5 * k + rng.randrange(5)}", f"w{rng.randrange(3)}"
            before = acked.get((user, ws))
            role = rng.choice([r for r in ("Viewer", "Developer", None) if r != before])
            md, subject = actor("admin"), f"user:{user}"
            try:
                if role is None:
                    r = await acc.RevokeWorkspaceAccess(
                        mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject), metadata=md, timeout=5
                    )
                elif before is None:
                    r = await acc.GrantWorkspaceAccess(
                        mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                        metadata=md,
                        timeout=5,
                    )
                else:
                    r = await acc.ChangeWorkspaceAccess(
                        mpb.ChangeWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                        metadata=md,
                        timeout=5,
                    )
            except grpc.aio.AioRpcError:
                unknown[(user, ws)] = role  # the replica died under this call: outcome unknown
                return
            acked[(user, ws)] = role
            head = max(head, int(r.revision))

    async with grpc.aio.insecure_channel(a.address) as ch:
        tasks = [asyncio.create_task(writer(ch, k)) for k in range(6)]
        await asyncio.sleep(1.5)
        a.kill()  # SIGKILL with writes in flight
        await asyncio.gather(*tasks)
    db = __import__("orgauthz.store.db", fromlist=["open_store"]).open_store(pg_db)
    try:
        with db.read() as s:
            stored = {
                (sub.removeprefix("user:"), ws): role
                for ws, sub, role in s.execute(
                    select(WorkspaceGrant.workspace_id, WorkspaceGrant.subject, WorkspaceGrant.role)
                ).all()
            }
    finally:
        db.dispose()
    # Every acknowledged write is there; the one in flight is either wholly there or not at all.
    lost = [
        (k, role, stored.get(k))
        for k, role in acked.items()
        if stored.get(k) != role and not (k in unknown and stored.get(k) == unknown[k])
    ]
    assert not lost, f"acknowledged writes lost: {lost[:5]}"
    extra = [k for k in stored if k not in acked and k not in unknown]
    assert not extra, f"unacknowledged writes appeared: {extra[:5]}"
    # The surviving replica serves exactly the store; the killed one restarts and agrees.
    await asyncio.to_thread(a.start)
    for replica in (b, a):
        async with grpc.aio.insecure_channel(replica.address) as ch:
            authz = apbg.AuthorizationServiceStub(ch)
            wrong = 0
            for i in range(30):
                for ws in ("w0", "w1", "w2"):
                    role = stored.get((f"u{i}", ws))
                    for scope in ("see_flows", "manage_flows"):
                        r = await authz.Check(
                            apb.CheckRequest(subject=f"user:u{i}", workspace=ws, scope=scope, min_revision=head),
                            timeout=10,
                        )
                        wrong += r.allowed != (scope in ROLE_SCOPES[role])
            assert wrong == 0, f"{replica.name}: {wrong} decisions differ from the store"
    print(
        f"\n[faults] writing replica SIGKILLed with 6 writers in flight: {len(acked)} keys acknowledged "
        f"(head revision {head}), {len(unknown)} writes cut off, 0 lost; 180 Checks on each replica agree"
    )


# -- a slow database --------------------------------------------------------------------------


class DelayProxy:
    """A TCP proxy to PostgreSQL that holds every chunk for ``delay`` seconds each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.delayed = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError, OSError):
            while data := await reader.read(65536):
                if self.delay:
                    self.delayed += 1
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def slow_app(pg: PgCluster, pg_db: str) -> AsyncIterator[tuple[App, DelayProxy]]:
    proxy = DelayProxy(pg.port)
    await proxy.start()
    url = pg_db.replace(f":{pg.port}/", f":{proxy.port}/")
    app = App(settings_for(url, migrate=False, poll_interval_s=0.1))
    await app.start()
    yield app, proxy
    await app.stop(0)
    await proxy.stop()


async def test_s3_slow_database_loses_nothing_and_decisions_stay_right(slow_app: tuple[App, DelayProxy]) -> None:
    app, proxy = slow_app
    rng = random.Random(3)
    roles: dict[tuple[str, str], str | None] = {}
    checks = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        acc, authz = mpbg.AccessServiceStub(ch), apbg.AuthorizationServiceStub(ch)

        async def verify() -> None:
            nonlocal checks
            for (user, ws), role in roles.items():
                for scope in ("see_flows", "manage_flows"):
                    r = await authz.Check(
                        apb.CheckRequest(subject=f"user:{user}", workspace=ws, scope=scope), timeout=10
                    )
                    assert r.allowed == (scope in ROLE_SCOPES[role]), (user, ws, scope, role)
                    checks += 1

        for phase, delay in (("fast", 0.0), ("slow", 0.01), ("slower", 0.04), ("recovered", 0.0)):
            proxy.delay = delay
            for _ in range(6):
                user, ws = f"u{rng.randrange(30)}", f"w{rng.randrange(3)}"
                before = roles.get((user, ws))
                role = rng.choice([r for r in ("Viewer", "Developer", None) if r != before])
                md, subject = actor("admin"), f"user:{user}"
                if role is None:
                    await acc.RevokeWorkspaceAccess(
                        mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject), metadata=md, timeout=30
                    )
                elif before is None:
                    await acc.GrantWorkspaceAccess(
                        mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                        metadata=md,
                        timeout=30,
                    )
                else:
                    await acc.ChangeWorkspaceAccess(
                        mpb.ChangeWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                        metadata=md,
                        timeout=30,
                    )
                roles[(user, ws)] = role
                await verify()  # answered from memory, whatever the database's pace
            print(
                f"[faults] {phase} (+{delay * 1000:.0f} ms a packet): 6 writes acknowledged; store health "
                f"{'SERVING' if app.replication.store_ok else 'NOT_SERVING'}"
            )
    assert app.db is not None
    db = app.db

    def read() -> dict[tuple[str, str], str]:  # in a thread: the proxy runs on this event loop
        with db.read() as s:
            return {
                (sub.removeprefix("user:"), ws): role
                for ws, sub, role in s.execute(
                    select(WorkspaceGrant.workspace_id, WorkspaceGrant.subject, WorkspaceGrant.role)
                ).all()
            }

    stored = await asyncio.to_thread(read)
    assert stored == {k: v for k, v in roles.items() if v is not None}
    assert app.replication is not None
    assert app.replication.store_ok
    print(f"[faults] slow database: {proxy.delayed} packets delayed, 24 writes, 0 lost, {checks} Checks, 0 wrong")
