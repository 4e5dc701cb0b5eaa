"""PostgreSQL's commit when the connection drops around COMMIT (SPEC §3: nothing lost,
nothing answered twice).

The store is given a fault-injecting connection (``PostgresStore(connect=...)``): it drops
the connection just before the round trip carrying COMMIT is sent, or just after it was
sent and answered, and may refuse new connections. The store must answer what happened: a
write that committed is answered as committed (with its revision), one that did not is
Unavailable "nothing was written", and when the database cannot say, Unavailable says the
write may have committed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from orgauthz.domain.policy import PolicySet
from orgauthz.errors import Unavailable
from orgauthz.store import base as store
from orgauthz.store.importer import import_document
from orgauthz.store.models import Workspace
from orgauthz.store.postgres import PostgresStore, connect
from tests.store.test_contract import revisions
from tests.support.orgs import ACME, doc
from tests.support.services import PgCluster
from tests.support.store import commit_rows_now

_n = itertools.count()


class Faults:
    """What the next round trip carrying COMMIT meets, and whether new connections are refused."""

    def __init__(self) -> None:
        self.at_commit = ""  # "before": dropped unsent; "after": dropped once answered
        self.refuse = False
        self.away_after_drop = False  # the database goes away with the dropped connection
        self.dropped = 0

    async def connect(self, conninfo: str) -> Any:
        if self.refuse:
            raise psycopg.OperationalError("connection refused (injected)")
        return _Connection(await connect(conninfo), self)


class _Connection:
    def __init__(self, conn: psycopg.AsyncConnection[Any], faults: Faults) -> None:
        self._conn, self._faults = conn, faults

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor(), self)

    async def drop(self) -> None:
        self._faults.dropped += 1
        self._faults.at_commit = ""
        self._faults.refuse = self._faults.away_after_drop
        await self._conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly (injected)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _Cursor:
    def __init__(self, cursor: Any, conn: _Connection) -> None:
        self._cursor, self._conn = cursor, conn

    async def execute(self, query: str, *args: Any) -> Any:
        when = self._conn._faults.at_commit
        if "COMMIT" in query and when == "before":
            await self._conn.drop()
        done = await self._cursor.execute(query, *args)
        if "COMMIT" in query and when == "after":
            await self._conn.drop()
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.fixture
def faulty(pg: PgCluster, policy: PolicySet) -> Iterator[tuple[PostgresStore, Faults]]:
    name = f"commitfaults{next(_n)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    faults = Faults()
    db = PostgresStore(pg.url(name), connect=faults.connect)
    import_document(db, policy, doc(ACME))
    yield db, faults
    db.dispose()
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _add(db: PostgresStore, ws_id: str) -> int:
    row = {"id": ws_id, "org_id": "acme", "handle": ws_id, "name": ws_id, "created_at": datetime.now(UTC)}
    return commit_rows_now(db, "acme", "test.workspace", store.insert(Workspace, row))[0]


def _stored(db: PostgresStore, ws_id: str) -> bool:
    with db.read() as s:
        return s.scalar(select(Workspace.id).where(Workspace.id == ws_id)) is not None


def test_a_commit_whose_answer_is_lost_is_answered_as_committed(faulty: tuple[PostgresStore, Faults]) -> None:
    db, faults = faulty
    faults.at_commit = "after"
    assert _add(db, "kept") == 2  # no Unavailable: the store read back that revision 2 is this write
    assert faults.dropped == 1
    assert _stored(db, "kept")
    assert _add(db, "next") == 3
    assert revisions(db) == [1, 2, 3]


def test_a_commit_never_sent_is_unavailable_and_nothing_was_written(faulty: tuple[PostgresStore, Faults]) -> None:
    db, faults = faulty
    faults.at_commit = "before"
    with pytest.raises(Unavailable, match="nothing was written"):
        _add(db, "lost")
    assert faults.dropped == 1
    assert not _stored(db, "lost")
    assert revisions(db) == [1]
    assert _add(db, "lost") == 2  # the retry takes the revision the lost write would have had


def test_a_commit_the_database_cannot_settle_says_it_may_have_committed(
    faulty: tuple[PostgresStore, Faults],
) -> None:
    db, faults = faulty
    faults.at_commit = "after"
    faults.away_after_drop = True
    with pytest.raises(Unavailable, match="may have committed"):
        _add(db, "unknown")
    faults.refuse = False
    assert _stored(db, "unknown")  # it had committed: the answer told the caller to read it back
    assert revisions(db) == [1, 2]
