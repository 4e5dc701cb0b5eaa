"""The shared store: PostgreSQL, for several replicas. Writes run on the event loop.

A commit is two round trips on one psycopg asyncio connection (autocommit; the transaction
is an explicit ``BEGIN``), each one query string of several statements whose values psycopg
binds on this side (``AsyncClientCursor.mogrify``):

1. ``BEGIN``, the write lock (``pg_advisory_xact_lock``), the head revision and the write's
   ``reads``. Separate statements: in READ COMMITTED each one's snapshot is taken after the
   lock is granted, so they see every write committed before this one.
2. ``decide``'s rows, the audit events, the ``changes`` row, the organization's revision and
   ``COMMIT``.

No worker thread and no thread wake-up per round trip: under a Check load a write waits for
the event loop once per round trip (bench/NOTES.md: grant/revoke visible p99 against SPEC
§5's 20 ms). Writes of one event loop take turns on its one connection; the global lock serializes
them anyway.

When the connection drops during round trip 2 the write may or may not have committed. The
store settles it before answering: on a new connection, once the write lock is free (the
old transaction has ended one way or the other), the ``changes`` row at the write's revision
says whether it is this write.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import psycopg
from psycopg.types.json import Json
from sqlalchemy import Executable
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ClauseElement

from orgauthz.errors import AlreadyExists, Unavailable
from orgauthz.store.base import AnySelect, Committed, Decide, Locked, Read, param_sets
from orgauthz.store.db import SqlStore, closing, locked

T = TypeVar("T")
_WRITE_LOCK_KEY = 0x6F7A  # pg_advisory_xact_lock key serializing writers
_LOCK = f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY})"
_HEAD = "SELECT revision FROM changes ORDER BY revision DESC LIMIT 1"
_CHANGE_AT = "SELECT org_id, kind, committed_at FROM changes WHERE revision = %s"
Connect = Callable[[str], Awaitable[psycopg.AsyncConnection[Any]]]


async def connect(conninfo: str) -> psycopg.AsyncConnection[Any]:
    """The default connection of the event loop's writes."""
    return await psycopg.AsyncConnection.connect(conninfo, autocommit=True, cursor_factory=psycopg.AsyncClientCursor)


class _Line:
    def __init__(self) -> None:
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.lock = asyncio.Lock()


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, echo: bool = False, connect: Connect = connect) -> None:
        super().__init__(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self._connect = connect
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        # One connection per event loop (the server's; an import's own, in its thread).
        self._lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Line] = weakref.WeakKeyDictionary()
        self._sql: dict[tuple[int, tuple[str, ...]], tuple[Any, str, dict[str, Any]]] = {}
        self._row_types: dict[int, tuple[AnySelect, type]] = {}

    # -- the event loop's connection ---------------------------------------------------

    @property
    def _line(self) -> _Line:
        """The running event loop's connection and the lock its writes take turns on."""
        loop = asyncio.get_running_loop()
        line = self._lines.get(loop)
        if line is None:
            line = self._lines[loop] = _Line()
        return line

    @property
    def _lock(self) -> asyncio.Lock:
        return self._line.lock

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        line = self._line
        if line.conn is None or line.conn.closed:
            line.conn = await self._connect(self._conninfo)
        return line.conn

    async def _discard(self) -> None:
        line = self._line
        conn, line.conn = line.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        """Closes the running event loop's connection."""
        async with self._lock:
            await self._discard()

    async def head(self) -> int:
        """One short statement on the event loop's connection: no worker thread, whose
        Python would contend with the event loop for the interpreter."""
        async with self._lock:
            try:
                cursor = (await self._connection()).cursor()
                await cursor.execute(_HEAD)
                row = await cursor.fetchone()
            except psycopg.OperationalError as exc:
                await self._discard()
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
            except BaseException:
                await self._discard()
                raise
        return int(row[0]) if row else 0

    # -- commit --------------------------------------------------------------------------

    async def commit(self, org_id: str, kind: str, reads: Mapping[str, Read], decide: Decide[T]) -> Committed[T]:
        async with self._lock:
            at = await self._lock_and_read(org_id, kind, reads)
            try:
                decision = decide(at)
                change, writes = closing(at, decision)
                cursor = cast(psycopg.AsyncClientCursor[Any], (await self._connection()).cursor())
                sql = [cursor.mogrify(self._dml(s, p), _jsonable(p)) for s, ps in writes for p in param_sets((s, ps))]
            except BaseException:
                await self._rollback()
                raise
            try:
                await cursor.execute(";".join([*sql, "COMMIT"]))
            except psycopg.IntegrityError as exc:
                await self._discard()
                raise AlreadyExists("a resource with that id, handle or name already exists") from exc
            except psycopg.OperationalError as exc:
                await self._discard()
                if not await self._settle(at):
                    raise Unavailable(f"database unavailable: {type(exc).__name__}; nothing was written") from exc
            except BaseException:
                await self._discard()  # a failed transaction may still be open
                raise
            return Committed(decision.result, at.revision, change)

    async def _lock_and_read(self, org_id: str, kind: str, reads: Mapping[str, Read]) -> Locked:
        """Round trip 1. A connection found dead is replaced once: nothing was written."""
        for attempt in (1, 2):
            try:
                cursor = cast(psycopg.AsyncClientCursor[Any], (await self._connection()).cursor())
                sql = [cursor.mogrify(*self._select(statement, params)) for statement, params in reads.values()]
                await cursor.execute(";".join(("BEGIN", _LOCK, _HEAD, *sql)))
                cursor.nextset()  # past BEGIN's
                cursor.nextset()  # and the lock's
                head = await cursor.fetchone()
                rows: dict[str, Any] = {}
                for name, (statement, _) in reads.items():
                    cursor.nextset()
                    row_type = self._row_type(statement)
                    rows[name] = [row_type(*r) for r in await cursor.fetchall()]
                return locked(org_id, kind, int(head[0]) if head else 0, rows)
            except psycopg.OperationalError as exc:
                await self._discard()
                if attempt == 2:
                    raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
            except BaseException:
                await self._discard()  # inside a transaction that failed
                raise
        raise AssertionError("unreachable")

    async def _rollback(self) -> None:
        try:
            await (await self._connection()).rollback()
        except psycopg.Error:
            await self._discard()
        except BaseException:
            await self._discard()  # cancelled: the transaction may still be open
            raise

    async def _settle(self, at: Locked) -> bool:
        """Whether the write whose COMMIT went unanswered committed. Raises Unavailable when
        the database cannot say (it is away): the outcome is then unknown."""
        try:
            cursor = (await self._connection()).cursor()
            await cursor.execute(";".join((_LOCK, cast(Any, cursor).mogrify(_CHANGE_AT, (at.revision,)))))
            cursor.nextset()
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            await self._discard()
            raise Unavailable(
                f"database unavailable while committing revision {at.revision}: the write may have committed; "
                "read it back before retrying"
            ) from exc
        return row is not None and tuple(row) == (at.org_id, at.kind, at.now)

    # -- statements compiled once --------------------------------------------------------

    def _compiled(self, statement: Executable, keys: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
        """The driver's SQL for a statement built once (keyed by identity and value names)."""
        key = (id(statement), keys)
        hit = self._sql.get(key)
        if hit is None or hit[0] is not statement:
            element = cast(ClauseElement, statement)
            compiled = element.compile(dialect=self.engine.dialect, column_keys=list(keys) or None)
            hit = self._sql[key] = (element, str(compiled), dict(compiled.params))
        return hit[1], hit[2]

    def _select(self, statement: AnySelect, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sql, defaults = self._compiled(statement)
        if "POSTCOMPILE" not in sql:
            return sql, {**defaults, **params}
        # An IN list of bound values (``bindparam(..., expanding=True)``): its placeholders
        # depend on the values, so they are expanded per write.
        state = statement.compile(dialect=self.engine.dialect).construct_expanded_state({**defaults, **params})
        return state.statement, dict(state.parameters)

    def _dml(self, statement: Executable, params: dict[str, Any]) -> str:
        return self._compiled(statement, tuple(params))[0]

    def _row_type(self, statement: AnySelect) -> type:
        """A named tuple of the statement's columns: rows read as ``row.name`` or unpacked,
        as SQLAlchemy's rows are on SQLite."""
        hit = self._row_types.get(id(statement))
        if hit is None or hit[0] is not statement:
            names = list(statement.selected_columns.keys())
            hit = self._row_types[id(statement)] = (statement, namedtuple("Row", names, rename=True))
        return hit[1]


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: Json(v) if isinstance(v, dict | list) else v for k, v in values.items()}
