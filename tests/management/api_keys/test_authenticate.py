"""R14: Authenticate is served from memory when warm, and a key ended by a write is never
answered with its old identity on the server that wrote once the write returned (service
account ``pnb_`` keys and user ``pnu_`` keys alike), on SQLite and PostgreSQL. Expiry and
the end of a grace period are checked against the clock when answering.

The other server's side (answered once its feed applied the write, or at once with
``min_revision``) is in tests/replicas/test_api_keys.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import event

from orgauthz.api.server import App
from orgauthz.cache.keys import KeyCache, KeyEntry
from orgauthz.domain.changes import ChangeSet
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upbg
from tests.management.user_keys.support import as_user, authenticate, create_key
from tests.support.orgs import ACME_SERVICE_ACCOUNTS, doc, seed

C = grpc.StatusCode


class StoreReads:
    """Counts the statements the server sends to the database that read API keys (the
    change feed's polls, which read other tables, are not counted)."""

    def __init__(self, app: App) -> None:
        self.count = 0
        assert app.db is not None
        engine = app.db.engine

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "api_keys" in statement:
                self.count += 1

        event.listen(engine, "before_cursor_execute", seen)  # gone with the server's engine


@pytest.fixture
async def world(app: App, channel: grpc.aio.Channel, policy) -> tuple[Any, Any]:
    """acme with alice (Admin) and bob; stubs for service accounts and user keys."""
    revision = seed(app.db, policy, doc(ACME_SERVICE_ACCOUNTS))
    await app.feed.wait_for(revision, 10)
    return spbg.ServiceAccountServiceStub(channel), upbg.UserApiKeyServiceStub(channel)


async def _service_account_key(sas: Any, sa_id: str = "ci-bot") -> str:
    created = await sas.CreateServiceAccount(
        spb.CreateServiceAccountRequest(organization="acme", id=sa_id, name=sa_id), metadata=as_user("alice")
    )
    return str(created.api_key)


async def test_r14_warm_authenticate_costs_no_database_read(app: App, world, authz) -> None:
    sas, keys = world
    keys_of = {"pnb_": await _service_account_key(sas), "pnu_": (await create_key(keys, "bob")).api_key}
    reads = StoreReads(app)
    for prefix, key in keys_of.items():
        before = reads.count
        first = await authenticate(authz, key)
        assert not isinstance(first, grpc.StatusCode), prefix
        assert reads.count == before + 1, prefix  # cold: one read
        for _ in range(50):
            again = await authenticate(authz, key)
            assert not isinstance(again, grpc.StatusCode)
            assert again.subject == first.subject
        assert reads.count == before + 1, f"{prefix}: a warm Authenticate read the database"
    assert app.keys is not None
    assert app.keys.hits >= 100
    # Unknown keys are not remembered: each costs its read (and is refused).
    before = reads.count
    for _ in range(3):
        assert await authenticate(authz, "pnu_" + "Q" * 40) == C.UNAUTHENTICATED
    assert reads.count == before + 3
    # A malformed key costs nothing.
    assert await authenticate(authz, "pnu_short") == C.UNAUTHENTICATED
    assert reads.count == before + 3


async def test_r14_a_deleted_user_key_is_never_answered_once_the_delete_returned(app: App, world, authz) -> None:
    _, keys = world
    created = await create_key(keys, "bob")
    key = created.api_key
    uses: list[tuple[float, grpc.StatusCode]] = []
    stop = asyncio.Event()

    async def use() -> None:
        while not stop.is_set():
            start = time.monotonic()
            answer = await authenticate(authz, key)
            uses.append((start, answer if isinstance(answer, grpc.StatusCode) else C.OK))

    users = [asyncio.create_task(use()) for _ in range(4)]
    await asyncio.sleep(0.1)
    await keys.DeleteUserApiKey(upb.DeleteUserApiKeyRequest(user_id="bob", id=created.key.id), metadata=as_user("bob"))
    deleted_at = time.monotonic()
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*users)
    before = [c for s, c in uses if s < deleted_at]
    after = [c for s, c in uses if s > deleted_at]
    assert C.OK in before, "the key never worked"
    assert after, "no use after the delete"
    assert set(after) == {C.UNAUTHENTICATED}, "the deleted key was answered after the delete returned"


async def test_r13_r14_a_rotated_or_deleted_service_account_key_is_refused_at_once_when_warm(
    app: App, world, authz
) -> None:
    sas, _ = world
    old = await _service_account_key(sas)
    for _ in range(3):
        assert not isinstance(await authenticate(authz, old), grpc.StatusCode)  # warm
    rot = await sas.RotateServiceAccountKey(
        spb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
    )
    assert await authenticate(authz, old) == C.UNAUTHENTICATED
    new = await authenticate(authz, rot.api_key)
    assert not isinstance(new, grpc.StatusCode)
    assert (new.service_account, new.organization, new.subject) == ("ci-bot", "acme", "service_account:ci-bot")
    assert new.revision >= rot.revision
    await sas.DeleteServiceAccount(
        spb.DeleteServiceAccountRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
    )
    assert await authenticate(authz, rot.api_key) == C.UNAUTHENTICATED


async def test_r13_r14_expiry_and_the_end_of_a_grace_period_are_checked_when_answering(app: App, world, authz) -> None:
    sas, keys = world
    expiring = (await create_key(keys, "bob", ttl=1)).api_key
    old = await _service_account_key(sas)
    await sas.RotateServiceAccountKey(
        spb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot", grace_period_seconds=1),
        metadata=as_user("alice"),
    )
    started = time.monotonic()
    for key in (expiring, old):
        assert not isinstance(await authenticate(authz, key), grpc.StatusCode)  # in time, and now warm
    reads = StoreReads(app)
    await asyncio.sleep(max(0.0, 1.2 - (time.monotonic() - started)))
    assert await authenticate(authz, expiring) == C.UNAUTHENTICATED
    assert await authenticate(authz, old) == C.UNAUTHENTICATED
    assert reads.count == 0  # refused from memory, by the clock


async def test_r14_min_revision_ahead_is_unavailable_and_retryable(app: App, world, authz) -> None:
    _, keys = world
    created = await create_key(keys, "bob")
    answer = await authenticate(authz, created.api_key, created.revision)
    assert not isinstance(answer, grpc.StatusCode)
    assert answer.revision >= created.revision
    app.decisions.min_revision_wait = 0.05
    ahead = created.revision + 1000
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await authz.Authenticate(apb.AuthenticateRequest(api_key=created.api_key, min_revision=ahead))
    assert err.value.code() == C.UNAVAILABLE
    assert "retry" in (err.value.details() or "")
    assert created.api_key not in (err.value.details() or "")


# -- the cache on its own ----------------------------------------------------------------------


def _entry(key_hash: str, subject: str, revision: int) -> KeyEntry:
    return KeyEntry(key_hash, subject, "", None, None, revision)


def test_r14_an_applied_change_drops_the_keys_of_the_subjects_it_names() -> None:
    cache = KeyCache(10)
    cache.put(_entry("h1", "user:bob", 5))
    cache.put(_entry("h2", "user:bob", 5))
    cache.put(_entry("h3", "service_account:ci", 5))
    cache.applied(6, ChangeSet("", "user-key.created"))  # names no key: nothing dropped
    assert len(cache) == 3
    cache.applied(7, ChangeSet("", "user-key.deleted", keys=["user:bob"]))
    assert cache.get("h1") is None
    assert cache.get("h2") is None
    assert cache.get("h3") is not None
    cache.applied(8, None)  # the engine re-read its index: anything may have changed
    assert len(cache) == 0


def test_r14_a_read_in_flight_while_a_key_was_ended_is_not_kept() -> None:
    cache = KeyCache(10)
    cache.applied(9, ChangeSet("acme", "api-key.rotated", keys=["service_account:ci"]))
    cache.put(_entry("h1", "service_account:ci", 8))  # read before revision 9 was applied
    assert cache.get("h1") is None
    cache.put(_entry("h1", "service_account:ci", 9))
    assert cache.get("h1") is not None


def test_r14_the_cache_is_bounded() -> None:
    cache = KeyCache(20)
    for i in range(1000):
        cache.put(_entry(f"h{i}", f"user:u{i}", 1))
    assert len(cache) <= 20
    assert cache.get("h999") is not None
    cache.applied(2, ChangeSet("", "user-key.deleted", keys=[f"user:u{i}" for i in range(1000)]))
    assert len(cache) == 0


def test_r14_entries_keep_the_times_the_clock_is_compared_with() -> None:
    from orgauthz.services.api_keys import works

    now = datetime(2026, 12, 7, tzinfo=UTC)
    past, future = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert works(None, None, now)
    assert works(future, future, now)
    assert not works(past, None, now)
    assert not works(None, past, now)


async def test_r14_reimporting_an_organization_ends_the_keys_of_the_service_accounts_it_replaces(
    app: App, world, authz, policy
) -> None:
    sas, _ = world
    key = await _service_account_key(sas)
    for _ in range(3):
        assert not isinstance(await authenticate(authz, key), grpc.StatusCode)  # warm
    # ``orgauthz import`` replaces the organization's rows (the document names no such account).
    revision = seed(app.db, policy, doc(ACME_SERVICE_ACCOUNTS))
    assert await authenticate(authz, key, revision) == C.UNAUTHENTICATED
