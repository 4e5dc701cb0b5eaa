"""Writes tests make straight to a store (to age a row, prune ``changes``...), through the
one commit primitive every write of the service takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from orgauthz.domain.changes import ChangeSet
from orgauthz.domain.lines import Line
from orgauthz.store.base import Committed, Decide, Decision, Locked, Read, Store, Write
from orgauthz.store.db import blocking

T = TypeVar("T")


async def commit_rows(
    store: Store,
    org: str,
    kind: str,
    *writes: Write,
    add: tuple[Line, ...] = (),
    remove: tuple[Line, ...] = (),
    keys: tuple[str, ...] = (),
) -> Committed[None]:
    """Commits ``writes`` as one write of ``org`` (a revision of its own), with the lines
    it adds and removes, and the subjects whose API keys it changes, as its change set."""

    def decide(at: Locked) -> Decision[None]:
        return Decision(
            None, writes=list(writes), change=at.change(add=list(add), remove=list(remove), keys=list(keys))
        )

    return await store.commit(org, kind, {}, decide)


def commit_rows_now(
    store: Store, org: str, kind: str, *writes: Write, add: tuple[Line, ...] = (), remove: tuple[Line, ...] = ()
) -> tuple[int, ChangeSet]:
    """:func:`commit_rows` from synchronous code; returns the revision and the change set."""
    done = blocking(store, lambda: commit_rows(store, org, kind, *writes, add=add, remove=remove))
    return done.revision, done.change


def commit_now(
    store: Store, org: str, kind: str, decide: Decide[T], reads: Mapping[str, Read] | None = None
) -> Committed[T]:
    """``store.commit`` from synchronous code (a thread of its own may call it)."""
    return blocking(store, lambda: store.commit(org, kind, reads or {}, decide))
