"""The store interface: snapshot reads and one commit primitive.

Every write of the service and the importer is one :meth:`Store.commit`: the store takes
the global write lock, reads the newest revision and the rows the write names (``reads``),
hands them to a pure ``decide`` function, and commits what it returns (rows to write, audit
events, the :class:`~orgauthz.domain.changes.ChangeSet`) with the ``changes`` row and the
organization's revision, all or nothing. Writers are serialized so that revisions commit
in order: a replica reading ``changes`` past its position never skips a revision that
commits later (SPEC §3).

``decide`` reads nothing else and writes nothing itself: it may raise a domain error
(nothing is written) or return a :class:`Decision`. The statements it returns are built
once (module level, with bindparams) so that no SQLAlchemy work is repeated per write: use
:func:`insert`, :func:`update` and :func:`delete` below, or a statement of your own built
at import time.

Implementations: :class:`~orgauthz.store.sqlite.SqliteStore` (a worker thread, ``BEGIN
IMMEDIATE``) and :class:`~orgauthz.store.postgres.PostgresStore` (the event loop, two
round trips). Both pass ``tests/store``'s contract suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, cast

from sqlalchemy import Engine, Executable, Select, Table, and_, bindparam
from sqlalchemy import delete as sa_delete
from sqlalchemy import insert as sa_insert
from sqlalchemy import update as sa_update
from sqlalchemy.orm import Session

from orgauthz.domain.changes import Audit, ChangeSet

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
AnySelect: TypeAlias = Select[*tuple[Any, ...]]  # a SELECT of any columns
# What a write reads under the lock: a SELECT built once (module level, with bindparams)
# and its values, by name. ``decide`` finds the rows under the same name.
Read: TypeAlias = tuple[AnySelect, dict[str, Any]]
# A row to write: a statement built once and its values (a list of them: executemany).
Write: TypeAlias = tuple[Executable, dict[str, Any] | list[dict[str, Any]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they are stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Locked:
    """What ``decide`` is given: read under the write lock, for the revision it will take."""

    org_id: str
    kind: str
    revision: int  # the revision this write commits as
    now: datetime
    rows: Mapping[str, Sequence[Any]]  # each read's rows (tuples with named fields)

    def __getitem__(self, name: str) -> Sequence[Any]:
        return self.rows[name]

    def one(self, name: str) -> Any | None:
        """The first row of read ``name`` (None: no row)."""
        found = self.rows[name]
        return found[0] if found else None

    def change(self, **lines: Any) -> ChangeSet:
        """A ChangeSet of this write (``add=``, ``remove=``, ...)."""
        return ChangeSet(org_id=self.org_id, kind=self.kind, **lines)


@dataclass
class Decision(Generic[T]):
    """What a write commits, and what it answers (``result``)."""

    result: T
    writes: list[Write] = field(default_factory=list)
    audits: list[Audit] = field(default_factory=list)
    change: ChangeSet | None = None  # None: no lines change


Decide: TypeAlias = Callable[[Locked], Decision[T]]


@dataclass(frozen=True)
class Committed(Generic[T_co]):
    result: T_co
    revision: int
    change: ChangeSet


class Store(Protocol):
    """A database holding the source of truth (SPEC §3)."""

    url: str
    is_sqlite: bool
    engine: Engine  # SQLAlchemy's: snapshot reads, and the outbox's delivery bookkeeping (no revision)

    def migrate(self) -> None:
        """Brings the schema to the newest migration (idempotent). Raises Unavailable."""

    def read(self) -> AbstractContextManager[Session]:
        """A session on one consistent snapshot (worker threads). Raises Unavailable. Rows
        loaded through it stay readable after the block (detached, not expired)."""

    def driver_rows(self, session: Session, statement: AnySelect) -> list[tuple[Any, ...]]:
        """``statement``'s rows as plain tuples, in ``session``'s snapshot (many rows)."""

    async def head(self) -> int:
        """The newest committed revision (0: none). Raises Unavailable."""

    async def commit(self, org_id: str, kind: str, reads: Mapping[str, Read], decide: Decide[T]) -> Committed[T]:
        """One atomic write of one organization (see the module docstring).

        Raises Unavailable when the database cannot be reached or the write's outcome cannot
        be settled (nothing is written, or it is reported as not written only once read
        back), AlreadyExists on a uniqueness violation, and whatever ``decide`` raises."""

    def dispose(self) -> None:
        """Closes pooled connections (worker threads)."""

    async def aclose(self) -> None:
        """Closes the event loop's connection, if any."""


# -- statements for decisions, built once per table and set of key columns ----------------


def _table(model: Any) -> Table:
    return cast(Table, model.__table__ if hasattr(model, "__table__") else model)


@cache
def _insert(table: Table) -> Executable:
    return sa_insert(table).inline()


@cache
def _update(table: Table, keys: tuple[str, ...]) -> Executable:
    # (an UPDATE's own bindparams may not be named after its columns: hence ``k_``)
    return sa_update(table).where(and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys)))


@cache
def _delete(table: Table, keys: tuple[str, ...]) -> Executable:
    return sa_delete(table).where(and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys)))


def insert(model: Any, rows: dict[str, Any] | list[dict[str, Any]]) -> Write:
    """Inserts a row (or rows) of ``model``'s table; give every column without a default."""
    return _insert(_table(model)), rows


def update(model: Any, key: dict[str, Any], **values: Any) -> Write:
    """Sets ``values`` on the rows of ``model``'s table matching ``key`` (column: value)."""
    return _update(_table(model), tuple(key)), {**{f"k_{k}": v for k, v in key.items()}, **values}


def delete(model: Any, **key: Any) -> Write:
    """Deletes the rows of ``model``'s table matching ``key`` (column=value)."""
    return _delete(_table(model), tuple(key)), {f"k_{k}": v for k, v in key.items()}


def param_sets(write: Write) -> list[dict[str, Any]]:
    params = write[1]
    return params if isinstance(params, list) else [params]
