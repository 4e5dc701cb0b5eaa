"""The change feed: applies committed changes to the engine in revision order.

Polls the ``changes`` table every ``poll_interval`` seconds; :meth:`nudge` (after a local
write, or a Redis pub/sub message from another replica) polls at once. A lost nudge only
delays a change until the next poll; it never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from orgauthz.engine.engine import Engine
from orgauthz.errors import StaleRevision, Unavailable
from orgauthz.store import snapshots

log = logging.getLogger(__name__)


class ChangeFeed:
    def __init__(self, engine: Engine, *, poll_interval: float = 0.5, batch: int = 5000) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.batch = batch
        self._wake = asyncio.Event()
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._poll_lock = asyncio.Lock()
        self.errors = 0
        self.last_error = ""
        self.last_poll_ok = time.monotonic()
        self.lag_seconds = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orgauthz-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def nudge(self) -> None:
        self._wake.set()

    @property
    def healthy(self) -> bool:
        return not self.last_error

    async def poll(self) -> int:
        """Applies every committed change past the engine's position; returns how many."""
        async with self._poll_lock:
            total = 0
            while True:
                entries = await asyncio.to_thread(
                    snapshots.changes_since, self.engine.db, self.engine.applied, limit=self.batch
                )
                for entry in entries:
                    self.engine.apply(entry.revision, entry.change)
                total += len(entries)
                if len(entries) < self.batch:
                    break
            if total:
                async with self._advanced:
                    self._advanced.notify_all()
            return total

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

    async def wait_for(self, revision: int, timeout: float) -> None:
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
                        f"min_revision: this replica is at revision {self.engine.applied}, "
                        f"behind {revision}; retry"
                    )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._advanced.wait(), min(remaining, self.poll_interval))
                if self.engine.applied < revision:
                    self.nudge()
