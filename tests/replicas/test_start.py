"""SPEC §3: a replica reports SERVING only once it has applied the head revision it found at
start, and it answers no decision from older state before then.

A replica reads the store's index first thing and listens only after the rest of its
start-up (policies, servicers, the gRPC server). A change committed in between is in the
store when the replica starts answering but not in what it read, and an organization it has
not loaded is answered from Redis at the revision the index gave it: the decision another
replica shared for the state before the change. The replica must apply the head it finds
when it starts answering before it reports SERVING or decides anything.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.engine.engine import Engine
from orgauthz.store import snapshots
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from tests.conftest import settings_for
from tests.replicas.harness import Writer, eventually, health_of
from tests.support.services import RedisServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

AUTHZ = "orgauthz.v1.AuthorizationService"
STORE = "orgauthz.v1.Store"


async def _outcome(call: Any) -> str:
    """``allow@<revision>``/``deny@<revision>`` for an answer, else the status code's name."""
    try:
        got = await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    result = got.results[0] if isinstance(got, pb.BatchCheckResponse) else got
    if not hasattr(result, "allowed"):
        return f"OK@{result.revision}"  # a list
    return f"{'allow' if result.allowed else 'deny'}@{result.revision}"


async def test_s3_a_replica_serves_only_once_it_has_applied_the_head_it_found_at_start(
    replica_db: tuple[str, int], redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, base = replica_db
    ask = pb.CheckRequest(subject="user:u5", workspace="w0", scope="manage_flows")
    # Another replica decided the question at the seed's revision (u5 holds nothing in w0)
    # and shared the denial in Redis.
    other = App(settings_for(url, migrate=False, redis_url=redis.url))
    await other.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            denied = await pb_grpc.AuthorizationServiceStub(channel).Check(ask, timeout=10)
        assert (denied.allowed, denied.revision) == (False, base)
        assert other.replication is not None
        assert other.replication.shared is not None
        await other.replication.shared.flush()
    finally:
        await other.stop(0)

    writer = Writer(url, "", None)
    committed: list[int] = []
    real_start = Engine.start

    async def index_then_a_grant(engine: Engine) -> None:
        await real_start(engine)  # the index, as of the head at that moment
        committed.append(await writer.set_role("u5", "w0", None, "Developer"))  # then a grant commits

    # The replica's reads of the changes wait until the test has seen what it answers meanwhile.
    release = threading.Event()
    real_changes = snapshots.changes_since

    def held(*args: Any, **kwargs: Any) -> list[snapshots.FeedEntry]:
        release.wait(30)
        return real_changes(*args, **kwargs)

    monkeypatch.setattr(Engine, "start", index_then_a_grant)
    monkeypatch.setattr(snapshots, "changes_since", held)
    # A 30 s poll, and nobody announces the grant: nothing but the start-up may bring it in.
    app = App(settings_for(url, migrate=False, redis_url=redis.url, poll_interval_s=30, min_revision_wait_s=0.3))
    starting = asyncio.create_task(app.start())
    try:
        await eventually(lambda: app.port != 0 or starting.done(), "a port")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            for _ in range(3000):  # until it listens
                if await health_of(channel, "") != "UNAVAILABLE":
                    break
                await asyncio.sleep(0.01)
            stub = pb_grpc.AuthorizationServiceStub(channel)
            (head,) = committed

            # Not caught up: no decision, whatever the state it read first says.
            check = await _outcome(stub.Check(ask, timeout=10))
            batch = await _outcome(stub.BatchCheck(pb.BatchCheckRequest(items=[ask]), timeout=10))
            assert check == "UNAVAILABLE", f"Check answered {check}; the head found at start is {head}"
            assert batch == "UNAVAILABLE", f"BatchCheck answered {batch}; the head found at start is {head}"
            listed = await _outcome(
                stub.ListScopes(pb.ListScopesRequest(subject="user:u5", workspace="w0"), timeout=10)
            )
            where = await _outcome(
                stub.ListAccessibleWorkspaces(pb.ListAccessibleWorkspacesRequest(subject="user:u5"), timeout=10)
            )
            assert (listed, where) == ("UNAVAILABLE", "UNAVAILABLE"), "lists answered from the state read first"
            statuses = {name: await health_of(channel, name) for name in ("", AUTHZ, STORE)}
            assert statuses == dict.fromkeys(statuses, "NOT_SERVING"), statuses

            # Caught up: SERVING, and decisions reflect the head found at start.
            release.set()
            await asyncio.wait_for(starting, 30)
            assert app.feed is not None
            assert app.feed.start_head == head
            statuses = {name: await health_of(channel, name) for name in ("", AUTHZ, STORE)}
            assert statuses == dict.fromkeys(statuses, "SERVING"), statuses
            got = await stub.Check(ask, timeout=10)
            assert got.allowed
            assert got.revision >= head
    finally:
        release.set()
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await app.stop(0)
        writer.close()
