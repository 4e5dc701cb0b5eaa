"""PostgreSQL connections that die under the pool (the database restarted, an operator
ended the sessions): the next write and the next read still succeed, on fresh connections.

Writes skip the pool's liveness ping to save a round trip; this is what keeps that safe.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from orgauthz.domain.policy import PolicySet
from orgauthz.errors import AlreadyExists
from orgauthz.store import base as store
from orgauthz.store.base import Store
from orgauthz.store.db import blocking, open_store
from orgauthz.store.importer import import_document
from orgauthz.store.models import Workspace
from tests.store.test_contract import revisions
from tests.support.orgs import ACME, doc
from tests.support.services import PgCluster
from tests.support.store import commit_rows, commit_rows_now

_n = itertools.count()


@pytest.fixture
def pg_store(pg: PgCluster, policy: PolicySet) -> Iterator[tuple[PgCluster, str, Store]]:
    name = f"conns{next(_n)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    db = open_store(pg.url(name))
    import_document(db, policy, doc(ACME))
    yield pg, name, db
    db.dispose()
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _add_workspace(db: Store, ws_id: str) -> None:
    row = {"id": ws_id, "org_id": "acme", "handle": ws_id, "name": ws_id, "created_at": datetime.now(UTC)}
    commit_rows_now(db, "acme", "test.workspace", store.insert(Workspace, row))


def _end_every_session(pg: PgCluster, name: str) -> int:
    out = pg.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
    return int(out.split()[0])


def test_writes_and_reads_survive_every_pooled_connection_dying(
    pg_store: tuple[PgCluster, str, Store],
) -> None:
    pg, name, db = pg_store
    # Writers in parallel leave several connections in the pool (they queue on the lock).
    threads = [threading.Thread(target=_add_workspace, args=(db, f"before-{i}")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as s:
        assert len(s.scalars(select(Workspace.id).where(Workspace.id.like("before-%"))).all()) == 4
    for round_ in range(3):
        assert _end_every_session(pg, name) >= 1
        _add_workspace(db, f"after-{round_}")  # no Unavailable: the dead connection is replaced
        with db.read() as s:
            assert s.scalar(select(Workspace.id).where(Workspace.id == f"after-{round_}")) == f"after-{round_}"
    assert revisions(db) == list(range(1, 9))


def test_writes_sharing_the_event_loops_connection_each_get_their_own_answer(
    pg_store: tuple[PgCluster, str, Store],
) -> None:
    """Writes of one event loop take turns on its one connection: a uniqueness violation
    among them is answered to that write alone (AlreadyExists), the rest commit, and the
    connection is usable after it (seen before as a committed write answered INTERNAL, when
    a pooled connection was handed back mid-protocol)."""
    _, _, db = pg_store

    def row(ws_id: str) -> dict[str, object]:
        return {"id": ws_id, "org_id": "acme", "handle": ws_id, "name": ws_id, "created_at": datetime.now(UTC)}

    async def writes() -> list[object]:
        ids = [f"ws-{i % 6}" for i in range(12)]  # each id twice: one of each pair is refused
        return await asyncio.gather(
            *(commit_rows(db, "acme", "test.workspace", store.insert(Workspace, row(i))) for i in ids),
            return_exceptions=True,
        )

    got = blocking(db, writes)
    assert sum(isinstance(r, AlreadyExists) for r in got) == 6, got
    committed = sorted(r.revision for r in got if not isinstance(r, BaseException))  # type: ignore[attr-defined]
    assert committed == list(range(2, 8))
    _add_workspace(db, "after")
    assert revisions(db) == list(range(1, 9))
