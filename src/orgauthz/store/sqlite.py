"""The embedded store: SQLite, one file, writes in a worker thread.

A commit begins ``BEGIN IMMEDIATE`` (the write lock: SQLite has one writer at a time, and a
writer that locks at BEGIN never deadlocks upgrading), reads the head revision and the
write's ``reads``, runs ``decide`` and executes what it returns, all on one connection in one
worker thread: SQLite's calls block, and they are fast (no network).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from orgauthz.errors import AlreadyExists, Unavailable
from orgauthz.store.base import Committed, Decide, Read
from orgauthz.store.db import SqlStore, closing, locked
from orgauthz.store.models import Change

T = TypeVar("T")
_HEAD = select(Change.revision).order_by(Change.revision.desc()).limit(1)


class SqliteStore(SqlStore):
    def __init__(self, url: str, *, echo: bool = False) -> None:
        super().__init__(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN so two writers never deadlock upgrading.
            immediate = conn.get_execution_options().get("orgauthz_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def head(self) -> int:
        def run() -> int:
            with self.read() as s:
                return int(s.scalar(_HEAD) or 0)

        return await asyncio.to_thread(run)

    async def commit(self, org_id: str, kind: str, reads: Mapping[str, Read], decide: Decide[T]) -> Committed[T]:
        return await asyncio.to_thread(self.commit_now, org_id, kind, reads, decide)

    def commit_now(self, org_id: str, kind: str, reads: Mapping[str, Read], decide: Decide[T]) -> Committed[T]:
        """:meth:`commit` in the calling thread (the importer's, a test's)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(orgauthz_write=True)
                with conn.begin():
                    head = int(conn.execute(_HEAD).scalar() or 0)
                    rows = {
                        name: list(conn.execute(statement, params).all()) for name, (statement, params) in reads.items()
                    }
                    at = locked(org_id, kind, head, rows)
                    decision = decide(at)
                    change, writes = closing(at, decision)
                    for statement, params in writes:
                        if params or isinstance(params, dict):
                            conn.execute(statement, params)
            return Committed(decision.result, at.revision, change)
        except IntegrityError as exc:
            raise AlreadyExists("a resource with that id, handle or name already exists") from exc
        except (OperationalError, DBAPIError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
