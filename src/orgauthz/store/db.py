"""Database connection, migrations and the write unit of work.

Every write runs in :meth:`Database.write`: one transaction that takes the global write
lock, allocates the next revision (a row in ``changes``), lets the caller change rows and
describe the change, and commits all of it or nothing. Writers are serialized so that
revisions commit in order: a replica reading ``changes`` past its position never skips a
revision that commits later (SPEC §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast

import psycopg
from psycopg.types.json import Json
from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Select,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ClauseElement

from orgauthz.domain.lines import Line
from orgauthz.errors import AlreadyExists, Unavailable
from orgauthz.store.models import AuditEvent, Change, Organization

T = TypeVar("T")
_WRITE_LOCK_KEY = 0x6F7A  # pg_advisory_xact_lock key serializing writers
_MIGRATE_LOCK_KEY = 0x6F7B  # pg_advisory_xact_lock key serializing migrations
# A write's first statements on PostgreSQL: the lock, then (a later snapshot) the head revision.
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
_WRITE_LOCK_STMT = _LOCK_SQL % _WRITE_LOCK_KEY  # the same, as one literal statement (a constant int)
_HEAD_SQL = "SELECT revision FROM changes ORDER BY revision DESC LIMIT 1"
# Driver rows fetched per part, and the pause after a full one (see Database.driver_rows).
_ROWS_PART = 5000
_ROWS_PAUSE_S = 0.001
MIGRATIONS = Path(__file__).with_name("migrations")
AnySelect: TypeAlias = Select[*tuple[Any, ...]]  # a SELECT of any columns
# A write's ``read``: a SELECT built once (module level, with bindparams) and its values.
Read: TypeAlias = tuple[AnySelect, dict[str, Any]]
# Written by Core statements (no RETURNING), so they can travel in a pipeline.
_AUDIT = cast(Table, AuditEvent.__table__)
_CHANGES = cast(Table, Change.__table__)
_ORGS = cast(Table, Organization.__table__)
_INSERT_AUDIT = insert(_AUDIT).inline()
_INSERT_CHANGE = insert(_CHANGES).inline()
_BUMP_ORG = update(_ORGS).where(_ORGS.c.id == bindparam("org")).values(revision=bindparam("rev"))


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they are stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class ChangeSet:
    """What a write did, in the terms replicas apply: lines and workspace ownership."""

    org_id: str
    kind: str
    add: list[Line] = field(default_factory=list)
    remove: list[Line] = field(default_factory=list)
    workspaces_added: list[str] = field(default_factory=list)
    workspaces_removed: list[str] = field(default_factory=list)
    reload: bool = False  # custom roles changed: replicas rebuild the organization

    def payload(self) -> dict[str, Any]:
        return {
            "add": [list(x) for x in self.add],
            "remove": [list(x) for x in self.remove],
            "ws_add": self.workspaces_added,
            "ws_remove": self.workspaces_removed,
            "reload": self.reload,
        }

    @classmethod
    def from_row(cls, row: Change) -> ChangeSet:
        p = row.payload
        return cls(
            org_id=row.org_id,
            kind=row.kind,
            add=[tuple(x) for x in p.get("add", [])],
            remove=[tuple(x) for x in p.get("remove", [])],
            workspaces_added=list(p.get("ws_add", [])),
            workspaces_removed=list(p.get("ws_remove", [])),
            reload=bool(p.get("reload", False)),
        )


@dataclass
class Write:
    """Handed to the body of :meth:`Database.write`: one organization, one revision."""

    session: Session
    revision: int
    change: ChangeSet
    now: datetime = field(default_factory=utcnow)
    audits: list[dict[str, Any]] = field(default_factory=list)  # audit_events rows, inserted at commit
    read: list[tuple[Any, ...]] = field(default_factory=list)  # rows of the write's ``read`` statement
    queued: list[tuple[Executable, dict[str, Any]]] = field(default_factory=list)

    def closing(self) -> list[tuple[Executable, list[dict[str, Any]]]]:
        """What commits with the body's rows: its ``later`` statements, its audit events,
        the ``changes`` row and the organization's revision, each with its parameter sets."""
        org_id = self.change.org_id
        change = {
            "revision": self.revision,
            "org_id": org_id,
            "kind": self.change.kind,
            "payload": self.change.payload(),
            "committed_at": self.now,
        }
        return [
            *((statement, [params]) for statement, params in self.queued),
            *([(_INSERT_AUDIT, self.audits)] if self.audits else []),
            (_INSERT_CHANGE, [change]),
            (_BUMP_ORG, [{"org": org_id, "rev": self.revision}]),
        ]

    def later(self, statement: Executable, params: dict[str, Any] | None = None) -> None:
        """Runs an INSERT, UPDATE or DELETE (no RETURNING) at commit, with the bookkeeping:
        on PostgreSQL in the same round trip as the COMMIT. The body must not read its effect.
        Build ``statement`` once, with bindparams, and pass the values: no SQLAlchemy work
        is repeated per write (the server's event loop shares the interpreter with it)."""
        self.queued.append((statement, params or {}))


class _QuietAbortedPipeline(logging.Filter):
    """psycopg logs a warning when a pipeline ends in an error already being raised (a
    uniqueness violation answered as ALREADY_EXISTS); that error is reported, not this."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_QuietAbortedPipeline())
log = logging.getLogger(__name__)


@contextmanager
def _pipelined(conn: Connection, raw: Any) -> Iterator[None]:
    """On PostgreSQL, the block's statements are sent without waiting for each answer (one
    round trip up to the first result read or the COMMIT). After any error the connection
    is discarded, not pooled: an aborted pipeline can leave it mid-protocol."""
    if raw is None:
        yield
        return
    try:
        with raw.pipeline():
            yield
    except BaseException:
        conn.invalidate()
        raise


def _needs_answers(session: Session) -> bool:
    """Whether flushing the session needs the database's answers before it goes on: updated
    rows (their row counts are checked) and new rows whose key the database assigns
    (RETURNING). Such a flush cannot wait in a pipeline; inserts with keys and deletes can."""
    if session.dirty:
        return True
    return any(None in inspect(obj).mapper.primary_key_from_instance(obj) for obj in session.new)


class Database:
    """Owns the SQLAlchemy engine. Thread-safe; each call opens its own session."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._sqlite_setup()
            self._writer = self.engine
        else:
            # Writers skip the pool's liveness ping (a round trip per write): a write's first
            # statements are its lock and head revision, and when they find the connection
            # dead nothing was written, so the write starts again on a fresh one.
            self._writer = create_engine(url, **{**kwargs, "pool_pre_ping": False})
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        self._reads: dict[int, tuple[AnySelect, str, dict[str, Any]]] = {}
        self._dml: dict[tuple[int, tuple[str, ...]], tuple[Executable, str]] = {}
        self._loop_conn: Any = None  # psycopg.AsyncConnection of write_on_loop
        self._loop_lock = asyncio.Lock()

    def _sqlite_setup(self) -> None:
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

    def migrate(self) -> None:
        """Brings the schema to the newest migration (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection_url"] = self.url
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    # Replicas starting together migrate one at a time; the others then find
                    # the schema current. Released at the end of this transaction.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, DBAPIError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
        self._writer.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session on one consistent snapshot, for reads. Raises Unavailable.

        Rows loaded through it stay readable after the block (they are detached, not expired).
        """
        try:
            with self._sessions() as session:
                if not self.is_sqlite:
                    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                # Closing (not rolling back) ends the snapshot and leaves the loaded rows
                # usable, detached, by the caller.
                yield session
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    def driver_rows(self, session: Session, statement: AnySelect) -> list[tuple[Any, ...]]:
        """``statement``'s rows as the driver returns them (plain tuples), in the session's
        transaction: for reads of many rows, SQLAlchemy's row objects cost about four times
        the driver's own fetch (168,855 grants: 0.35-0.42 s against 0.08 s on PostgreSQL).

        For worker threads only. Rows are taken in parts with a short sleep between them: the
        driver converts rows without letting go of the interpreter, and the event loop and
        gRPC's poller thread would otherwise wait for it (every call in flight with them)."""
        compiled = statement.compile(dialect=self.engine.dialect)
        order = compiled.positiontup
        args: Any = tuple(compiled.params[k] for k in order) if order is not None else compiled.params
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # set while checked out
        try:
            cursor.execute(str(compiled), args)
            rows: list[tuple[Any, ...]] = []
            while part := cursor.fetchmany(_ROWS_PART):
                rows.extend(part)
                if len(part) == _ROWS_PART:
                    time.sleep(_ROWS_PAUSE_S)
            return rows
        finally:
            cursor.close()

    @contextmanager
    def write(self, org_id: str, kind: str, *, read: Read | None = None) -> Iterator[Write]:
        """One atomic write of one organization; commits its ``changes`` row.

        ``read``, a SELECT of what the body checks, runs under the write lock; its rows are
        ``Write.read``. On PostgreSQL statements travel together (psycopg pipeline mode): the
        lock, the head revision and ``read`` in one round trip; the body's inserts and deletes
        and ``Write.later`` statements, the audit events, the ``changes`` row and the
        organization's revision in another; the COMMIT, after the pipeline is left, in a
        third. (Grant, change and revoke on PostgreSQL take :meth:`write_on_loop`: two.)

        Raises Unavailable when the database cannot be reached (nothing is written),
        AlreadyExists on a uniqueness violation, and whatever the body raises (rolled back).
        """
        try:
            session, conn, raw, head, rows = self._begin_write(read)
            with session:
                work = Write(session=session, revision=head + 1, change=ChangeSet(org_id=org_id, kind=kind), read=rows)
                yield work
                if _needs_answers(session):
                    session.flush()
                with _pipelined(conn, raw):
                    session.flush()
                    # Statements built once; on PostgreSQL their SQL is compiled once and
                    # sent straight to the driver (SQLAlchemy's per-statement work was most
                    # of a write's CPU, which the server's event loop waits for).
                    if raw is None:
                        for statement, param_sets in work.closing():
                            conn.execute(statement, param_sets)
                    else:
                        cursor = raw.cursor()
                        for sql, values in self._driver_calls(work):
                            if len(values) > 1:
                                cursor.executemany(sql, values)
                            else:
                                cursor.execute(sql, values[0])
                # After the pipeline is left: committing returns the connection to the pool,
                # and one handed back inside an open pipeline can be taken by a concurrent
                # write before this one leaves it (psycopg then fails its own check, and a
                # committed write was answered INTERNAL). The COMMIT is a round trip of its own.
                session.commit()
        except (IntegrityError, psycopg.IntegrityError) as exc:
            raise AlreadyExists("a resource with that id, handle or name already exists") from exc
        except (OperationalError, DBAPIError, psycopg.OperationalError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    def _begin_write(self, read: Read | None) -> tuple[Session, Connection, Any, int, list[tuple[Any, ...]]]:
        """A write session holding the write lock, with the newest revision and the rows of
        ``read``. A pooled connection found dead (the database restarted) is replaced once:
        nothing was sent."""
        for attempt in (1, 2):
            session = self._write_sessions()
            try:
                conn = session.connection(execution_options={"orgauthz_write": True})
                raw = None if self.is_sqlite else conn.connection.dbapi_connection
                return (session, conn, raw, *self._lock_and_head(session, conn, raw, read))
            except (OperationalError, psycopg.OperationalError):
                session.close()
                if attempt == 2 or self.is_sqlite:
                    raise
                self._writer.dispose()  # its other pooled connections are as old as this one
        raise AssertionError("unreachable")

    def _lock_and_head(
        self, session: Session, conn: Connection, raw: Any, read: Read | None
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Takes the global write lock, then reads the newest revision and ``read`` (separate
        statements: in READ COMMITTED each later one's snapshot is taken after the lock is
        granted, so they see every write committed before this one)."""
        if raw is None:  # SQLite: BEGIN IMMEDIATE took the lock
            head = session.scalar(select(Change.revision).order_by(Change.revision.desc()).limit(1)) or 0
            return head, [tuple(r) for r in conn.execute(read[0], read[1]).all()] if read is not None else []
        with _pipelined(conn, raw):
            lock, last, found = raw.cursor(), raw.cursor(), raw.cursor()
            lock.execute(_LOCK_SQL, (_WRITE_LOCK_KEY,))
            last.execute(_HEAD_SQL)
            if read is not None:
                sql, defaults = self._compiled_read(read[0])
                found.execute(sql, {**defaults, **read[1]})
            row = last.fetchone()
            rows = [tuple(r) for r in found.fetchall()] if read is not None else []
        return (int(row[0]) if row else 0), rows

    def _driver_calls(self, work: Write) -> list[tuple[str, list[dict[str, Any]]]]:
        """``work.closing()`` as the driver's SQL (compiled once per statement and set of
        value names) with its parameter sets, JSON values wrapped for psycopg."""
        return [
            (self._compiled_dml(statement, tuple(rows[0])), [_jsonable(row) for row in rows])
            for statement, rows in work.closing()
        ]

    def _compiled_dml(self, statement: Executable, keys: tuple[str, ...]) -> str:
        """The driver's SQL for a statement built once, given the names of its values."""
        key = (id(statement), keys)
        hit = self._dml.get(key)
        if hit is None or hit[0] is not statement:
            compiled = cast(ClauseElement, statement).compile(dialect=self._writer.dialect, column_keys=list(keys))
            hit = self._dml[key] = (statement, str(compiled))
        return hit[1]

    def _compiled_read(self, statement: AnySelect) -> tuple[str, dict[str, Any]]:
        """The driver's SQL for a ``read`` statement, compiled on first use (statements are
        built once, at import, so the cache holds a handful)."""
        hit = self._reads.get(id(statement))
        if hit is None or hit[0] is not statement:
            compiled = statement.compile(dialect=self._writer.dialect)
            hit = self._reads[id(statement)] = (statement, str(compiled), dict(compiled.params))
        return hit[1], hit[2]

    # -- writes on the event loop (PostgreSQL) ---------------------------------------

    @property
    def writes_on_loop(self) -> bool:
        """Whether :meth:`write_on_loop` is available (PostgreSQL)."""
        return not self.is_sqlite

    async def write_on_loop(
        self,
        org_id: str,
        kind: str,
        body: Callable[[Write], T],
        *,
        read: Read,
    ) -> tuple[T, Write]:
        """:meth:`write` for bodies that need no ORM session (``Write.session`` is unset),
        run on the event loop with psycopg's asyncio connection: no worker thread and no
        thread wake-up per round trip. The same lock, revision, audit and ``changes``
        bookkeeping in two round trips, each one query string of several statements with
        the values bound by psycopg on this side (``AsyncClientCursor.mogrify``): the
        first ``BEGIN``, the lock, the head revision and ``read``; the second the body's
        rows, the bookkeeping and ``COMMIT``. Each round trip is one send and one wait,
        where pipeline mode let the loop run once per statement (under a Check load each
        of those turns waits behind the calls already queued). One connection per server,
        in autocommit mode (the transaction is the explicit ``BEGIN``), writes in turn (the
        global write lock serializes them anyway).
        """
        async with self._loop_lock:
            for attempt in (1, 2):
                try:
                    conn = await self._loop_connection()
                    head, rows = await self._lock_and_head_on_loop(conn, read)
                    break
                except psycopg.OperationalError as exc:
                    if attempt == 2:
                        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
            work = _loop_write(org_id, kind, head, rows)
            try:
                out = body(work)
            except BaseException:
                await self._rollback_loop_connection(conn)
                raise
            try:
                cursor = psycopg.AsyncClientCursor(conn)
                await cursor.execute(";".join([*self._closing_sql(cursor, work), "COMMIT"]))
            except psycopg.IntegrityError as exc:
                await self._discard_loop_connection()
                raise AlreadyExists("a resource with that id, handle or name already exists") from exc
            except psycopg.OperationalError as exc:
                await self._discard_loop_connection()
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
            except BaseException:
                await self._discard_loop_connection()  # a failed transaction may still be open
                raise
            return out, work

    def _read_sql(self, cursor: Any, read: Read) -> str:
        """``read`` as one literal statement, its values bound on this side."""
        sql, defaults = self._compiled_read(read[0])
        return cast(str, cursor.mogrify(sql, {**defaults, **read[1]}))

    def _closing_sql(self, cursor: Any, work: Write) -> list[str]:
        """The body's rows and the bookkeeping as literal statements, bound on this side."""
        return [cursor.mogrify(sql, row) for sql, rows in self._driver_calls(work) for row in rows]

    async def head_on_loop(self) -> int:
        """The newest revision, read on the event loop's connection (PostgreSQL only, as
        :meth:`write_on_loop`): one short statement and no worker thread, whose Python would
        contend with the event loop for the interpreter. Raises Unavailable."""
        async with self._loop_lock:
            try:
                conn = await self._loop_connection()
                cursor = await conn.execute(_HEAD_SQL)
                row = await cursor.fetchone()
            except psycopg.OperationalError as exc:
                await self._discard_loop_connection()
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
            except BaseException:
                await self._discard_loop_connection()
                raise
        return int(row[0]) if row else 0

    async def _lock_and_head_on_loop(self, conn: Any, read: Read) -> tuple[int, list[tuple[Any, ...]]]:
        """``BEGIN``, the lock, the head and ``read`` in one round trip."""
        cursor = psycopg.AsyncClientCursor(conn)
        try:
            await cursor.execute(";".join(("BEGIN", _WRITE_LOCK_STMT, _HEAD_SQL, self._read_sql(cursor, read))))
            cursor.nextset()  # past BEGIN's
            cursor.nextset()  # and the lock's
            row = await cursor.fetchone()
            cursor.nextset()
            rows = [tuple(r) for r in await cursor.fetchall()]
        except BaseException:
            await self._discard_loop_connection()  # dead, or inside a transaction that failed
            raise
        return (int(row[0]) if row else 0), rows

    async def _loop_connection(self) -> Any:
        if self._loop_conn is None or self._loop_conn.closed:
            url = make_url(self.url).set(drivername="postgresql")
            self._loop_conn = await psycopg.AsyncConnection.connect(
                url.render_as_string(hide_password=False), autocommit=True
            )
        return self._loop_conn

    async def _rollback_loop_connection(self, conn: Any) -> None:
        try:
            await conn.rollback()
        except psycopg.Error:
            await self._discard_loop_connection()
        except BaseException:
            await self._discard_loop_connection()  # cancelled: the transaction may still be open
            raise

    async def _discard_loop_connection(self) -> None:
        conn, self._loop_conn = self._loop_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        """Closes the event loop's connection (see :meth:`write_on_loop`)."""
        async with self._loop_lock:
            await self._discard_loop_connection()


def _loop_write(org_id: str, kind: str, head: int, rows: list[tuple[Any, ...]]) -> Write:
    """The ``Write`` a body on the event loop fills: no ORM session, the next revision."""
    return Write(
        session=cast(Session, None), revision=head + 1, change=ChangeSet(org_id=org_id, kind=kind), read=list(rows)
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: Json(v) if isinstance(v, dict | list) else v for k, v in values.items()}
