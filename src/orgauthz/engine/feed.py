"""The change feed: applies committed changes to the engine in revision order.

Polls the ``changes`` table every ``poll_interval`` seconds; :meth:`nudge` (after a local
write, or a Redis pub/sub message from another replica) polls at once. On PostgreSQL a poll
with nothing announced first reads only the head revision, on the event loop's connection;
the changes are read (in a worker thread) only when there are any. A lost nudge only
delays a change until the next poll; it never loses one.

A replica that finds itself far behind (more than ``reload_after`` revisions) or sees a
gap in the revisions (changes pruned) re-reads the index and drops its loaded
organizations, which load again on demand, instead of replaying every change.

At start, :meth:`catch_up` reads the store's head once the replica listens and returns
when the engine has applied it: the index was read at the beginning of start-up, and what
committed since is in the store but not in the index (SPEC §3: SERVING only once caught up
with the head found at start). :attr:`caught_up` says whether that is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from orgauthz.domain.changes import ChangeSet
from orgauthz.engine.engine import Engine
from orgauthz.engine.siblings import Siblings
from orgauthz.errors import StaleRevision, Unavailable
from orgauthz.store import snapshots

log = logging.getLogger(__name__)


class ChangeFeed:
    def __init__(
        self, engine: Engine, *, poll_interval: float = 0.5, batch: int = 5000, reload_after: int = 10_000
    ) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.batch = batch
        self.reload_after = reload_after
        self.known_head = 0  # the newest revision this replica has heard of (pub/sub, polls)
        self.last_caught_up = time.monotonic()  # start of the last poll that reached the head
        self._announcers: list[Callable[[int], None]] = []
        self._wake = asyncio.Event()
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._poll_lock = asyncio.Lock()
        self._reloading = False
        self.errors = 0
        self.last_error = ""
        self.last_poll_ok = time.monotonic()
        self.start_head: int | None = None  # the store's head when this replica began to listen
        self._caught_up = asyncio.Event()
        self.siblings: Siblings | None = None  # the other workers of this server (--workers)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orgauthz-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def nudge(self) -> None:
        self._wake.set()

    def observe_head(self, revision: int) -> None:
        """Another replica announced ``revision``: it exists in the store."""
        self.known_head = max(self.known_head, revision)

    def on_commit(self, announce: Callable[[int], None]) -> None:
        """Registers a callback told every revision this replica commits (pub/sub publish)."""
        self._announcers.append(announce)

    def committed(self, revision: int) -> None:
        """Called after a local write commits, before it is polled."""
        self.observe_head(revision)
        for announce in self._announcers:
            announce(revision)

    @property
    def lag_revisions(self) -> int:
        """Revisions known to exist in the store but not applied here."""
        return max(0, self.known_head - self.engine.applied)

    def lag_seconds(self) -> float:
        """0 while caught up; otherwise seconds since the feed last reached the store's head."""
        if not self.last_error and self.engine.applied >= self.known_head:
            return 0.0
        return time.monotonic() - self.last_caught_up

    @property
    def healthy(self) -> bool:
        return not self.last_error

    @property
    def caught_up(self) -> bool:
        """Whether the engine has applied the head revision found at start (:meth:`catch_up`)."""
        return self._caught_up.is_set()

    async def catch_up(self) -> int:
        """Reads the store's head and returns it once the engine has applied it (the feed
        must be started). Retries, every poll interval, while the database cannot be read."""
        while True:
            try:
                head = await self._head()
                break
            except Unavailable:
                await asyncio.sleep(self.poll_interval)
        self.start_head = head
        self.observe_head(head)
        while self.engine.applied < head:
            with contextlib.suppress(StaleRevision):  # the database is slow or away: keep waiting
                await self.wait_for(head, self.poll_interval)
        self._caught_up.set()
        return head

    async def until_caught_up(self, timeout: float) -> None:  # noqa: ASYNC109  # a bounded wait is the contract
        """Returns once :attr:`caught_up`; StaleRevision (UNAVAILABLE) after ``timeout``."""
        if self._caught_up.is_set():
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        if not self._caught_up.is_set():
            head = self.start_head if self.start_head is not None else "the store's head"
            raise StaleRevision(
                f"this replica is starting: at revision {self.engine.applied}, catching up with {head}; retry"
            )

    async def _head(self) -> int:
        """The store's newest revision (on the event loop's connection on PostgreSQL)."""
        return await self.engine.db.head()

    async def written_here(self, revision: int, change: ChangeSet) -> None:
        """After a write of this replica commits: other replicas (Redis pub/sub) and the
        other workers of this server are nudged before this one polls, and the change is
        applied here, so a Check on this replica reflects it when this returns (SPEC §3);
        with workers, once every serving worker applied it too (bounded:
        :meth:`Siblings.applied_everywhere`). Never raises for the database: when it went
        away before this replica read the write back, the change is applied directly if
        nothing lies between, otherwise the feed catches up when it can."""
        self.committed(revision)
        if self.siblings is not None:
            self.siblings.committed(revision, change)
        try:
            await self.applied_locally(revision, change)
        except Unavailable:
            if self.engine.applied == revision - 1:
                self.engine.apply(revision, change)
            else:
                self.engine.announce(revision, change)  # what it revoked is not answered meanwhile
            log.warning("revision %d committed; this replica applies it when the database returns", revision)
        if self.siblings is not None:
            await self.siblings.applied_everywhere(revision)

    async def applied_locally(self, revision: int, change: ChangeSet) -> None:
        """After a local write commits: applies its own change set when it is the next
        revision (no database read), else polls. Either way the write is reflected here
        when this returns (or Unavailable when the database cannot be read).

        A poll in progress does not hold the write up (it skips what is applied meanwhile);
        only a re-read of the index does, as the write may be older than what it reads."""
        if self.engine.applied == revision - 1 and not self._reloading:
            self.engine.apply(revision, change)
            async with self._advanced:
                self._advanced.notify_all()
            return
        await self.poll()

    async def poll(self) -> int:
        """Applies every committed change past the engine's position; returns how many."""
        async with self._poll_lock:
            engine = self.engine
            started = time.monotonic()
            if self.known_head - engine.applied > self.reload_after:
                await self._reload(f"{self.known_head - engine.applied} revisions behind")
            if not engine.db.is_sqlite and self.known_head <= engine.applied:
                # Nothing announced: a head read on the event loop's connection says whether
                # there is anything to read. A periodic read in a worker thread cost the
                # Checks around it their tail (its Python contends for the interpreter).
                head = await engine.db.head()
                self.observe_head(head)
                if head <= engine.applied:
                    self.last_caught_up = started
                    return 0
            total = 0
            while True:
                read = await asyncio.to_thread(snapshots.changes_since, engine.db, engine.applied, limit=self.batch)
                # Local writes apply their own revisions while the read runs (applied_locally).
                entries = [entry for entry in read if entry.revision > engine.applied]
                if entries and entries[0].revision != engine.applied + 1:
                    # Revisions commit in order without holes: a hole means changes were pruned.
                    await self._reload(f"revisions {engine.applied + 1}..{entries[0].revision - 1} missing")
                    total += 1
                    continue
                for entry in entries:
                    engine.apply(entry.revision, entry.change)
                total += len(entries)
                if len(read) < self.batch:
                    break
                head = await asyncio.to_thread(snapshots.head_revision, engine.db)
                self.observe_head(head)
                if head - engine.applied > self.reload_after:
                    await self._reload(f"{head - engine.applied} revisions behind")
            self.observe_head(engine.applied)
            self.last_caught_up = started
            if total:
                async with self._advanced:
                    self._advanced.notify_all()
            return total

    async def _reload(self, why: str) -> None:
        log.warning("change feed: %s; re-reading the index, organizations reload on demand", why)
        self._reloading = True
        try:
            await self.engine.reload()
        finally:
            self._reloading = False

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                await self.poll()
                self.last_error = ""
                self.last_poll_ok = time.monotonic()
            except Unavailable as exc:
                self.errors += 1
                if not self.last_error:
                    log.warning("change feed: database unavailable, decisions continue from memory")
                self.last_error = str(exc)
            except Exception:  # the feed must survive anything; it is logged and retried
                self.errors += 1
                self.last_error = "internal error"
                log.exception("change feed poll failed")

    async def wait_for(self, revision: int, timeout: float) -> None:  # noqa: ASYNC109  # a bounded wait is the contract
        """Returns once the engine has applied ``revision``; StaleRevision after ``timeout``."""
        if self.engine.applied >= revision:
            return
        self.nudge()
        deadline = time.monotonic() + timeout
        async with self._advanced:
            while self.engine.applied < revision:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StaleRevision(
                        f"min_revision: this replica is at revision {self.engine.applied}, behind {revision}; retry"
                    )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._advanced.wait(), min(remaining, self.poll_interval))
                if self.engine.applied < revision:
                    self.nudge()
