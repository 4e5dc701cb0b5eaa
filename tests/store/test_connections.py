"""PostgreSQL connections that die under the pool (the database restarted, an operator
ended the sessions): the next write and the next read still succeed, on fresh connections.

Writes skip the pool's liveness ping to save a round trip; this is what keeps that safe.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from orgauthz.domain.policy import PolicySet
from orgauthz.errors import AlreadyExists
from orgauthz.store.base import Store
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from orgauthz.store.models import Workspace
from tests.store.test_contract import ACME, doc, revisions
from tests.support.services import PgCluster

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
    with db.write("acme", "test.workspace") as w:
        w.session.add(Workspace(id=ws_id, org_id="acme", handle=ws_id, name=ws_id, created_at=w.now))


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


def test_a_write_hands_its_connection_back_to_the_pool_out_of_pipeline_mode(
    pg_store: tuple[PgCluster, str, Store],
) -> None:
    """A connection returned to the pool inside an open pipeline was taken by a concurrent
    write while the first one still had to leave the pipeline: psycopg's check on leaving it
    failed, and a committed write was answered INTERNAL (seen in the R6 race of concurrent
    accepts of one invitation)."""
    from sqlalchemy import event

    _, _, db = pg_store
    open_at_checkin: list[bool] = []

    def checkin(dbapi_connection: object, _record: object) -> None:
        open_at_checkin.append(getattr(dbapi_connection, "_pipeline", None) is not None)

    event.listen(db._writer, "checkin", checkin)
    _add_workspace(db, "pipelined")
    with pytest.raises(AlreadyExists):  # the same id again: the error comes out of the pipeline
        _add_workspace(db, "pipelined")
    _add_workspace(db, "after")
    assert len(open_at_checkin) >= 2
    assert not any(open_at_checkin), open_at_checkin
