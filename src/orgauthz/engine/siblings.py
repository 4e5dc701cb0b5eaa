"""What the workers of one server share (``serve --workers N``), so that it keeps SPEC §3 as a whole.

Each worker is a process with its own engine, caches and change feed. They share two things
the supervisor (:mod:`orgauthz.workers`) creates in a private directory:

- the **board**, a small file mapped into every worker: per slot its state (down, starting,
  serving), its process id, the revision its engine has applied and the newest revision a
  write of that worker returned;
- one Unix datagram socket per slot, over which a worker that committed a write **nudges**
  the others and each **acknowledges** once it has applied that revision. The nudge carries
  the write's change set (up to :data:`CARRIED_MAX` bytes of it): a worker whose next
  revision it is applies it as the writer did, without reading the store; otherwise, or
  without it, the worker polls the store at once instead of at the next poll interval.

A write returns once every serving worker has applied its revision (:meth:`Siblings.applied_everywhere`,
bounded by ``worker_sync_timeout_s``). Behind that, every decision compares its worker's
applied revision with the newest revision a write of any worker returned
(:meth:`Siblings.head`) and waits for it as for ``min_revision``: a worker that was slow,
stuck or restarting never answers from before a write the server returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mmap
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orgauthz.domain.changes import ChangeSet
from orgauthz.errors import StaleRevision, Unavailable

log = logging.getLogger(__name__)

DOWN, STARTING, SERVING = 0, 1, 2
_FIELDS = 4  # per slot: state, pid, applied, returned
_STATE, _PID, _APPLIED, _RETURNED = range(_FIELDS)
_NUDGE, _ACK = 1, 2
_MESSAGE = struct.Struct("<BHq")  # kind, sender's slot, revision; a nudge may go on with its change
# The largest change a nudge carries (a datagram's bound is larger; an import is not carried).
# Measured reason (bench/NOTES.md item 15): with 2 workers on `large` (PostgreSQL) under a
# 2,000/s Check load, a write visible through another connection at p99 12.0-13.7 ms when the
# other worker applies the carried change, 22.7-26.1 ms when it reads the change from the store.
CARRIED_MAX = 32 * 1024
BOARD = "board"


def board_size(slots: int) -> int:
    return slots * _FIELDS * 8


def create_board(directory: Path, slots: int) -> None:
    """Writes an empty board for ``slots`` workers (the supervisor, before any starts)."""
    (directory / BOARD).write_bytes(b"\0" * board_size(slots))


def socket_path(directory: Path, slot: int) -> str:
    return str(directory / f"w{slot}.sock")


@dataclass(frozen=True)
class WorkerSlot:
    """Which worker a process is: its slot among ``slots``, and the supervisor's directory."""

    directory: Path
    slot: int
    slots: int


class Board:
    """The shared board, mapped. Each slot is written only by its worker (and by the
    supervisor when the worker is gone), so no value needs a lock."""

    def __init__(self, directory: Path, slots: int) -> None:
        self.slots = slots
        with open(directory / BOARD, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), board_size(slots))
        self._values = memoryview(self._map).cast("q")
        self._returned = self._values[_RETURNED::_FIELDS]

    def close(self) -> None:
        self._returned.release()
        self._values.release()
        self._map.close()

    def state(self, slot: int) -> int:
        return int(self._values[slot * _FIELDS + _STATE])

    def pid(self, slot: int) -> int:
        return int(self._values[slot * _FIELDS + _PID])

    def applied(self, slot: int) -> int:
        return int(self._values[slot * _FIELDS + _APPLIED])

    def set_state(self, slot: int, state: int, pid: int | None = None) -> None:
        if pid is not None:
            self._values[slot * _FIELDS + _PID] = pid
        self._values[slot * _FIELDS + _STATE] = state

    def set_applied(self, slot: int, revision: int) -> None:
        self._values[slot * _FIELDS + _APPLIED] = revision

    def set_returned(self, slot: int, revision: int) -> None:
        i = slot * _FIELDS + _RETURNED
        if revision > self._values[i]:
            self._values[i] = revision

    def head(self) -> int:
        """The newest revision a write of any worker of this server returned."""
        return max(self._returned)


class Feed(Protocol):
    """What a worker's change feed does for its siblings (:class:`~orgauthz.engine.feed.ChangeFeed`)."""

    def observe_head(self, revision: int) -> None: ...

    def nudge(self) -> None: ...

    async def applied_locally(self, revision: int, change: ChangeSet) -> None: ...

    async def wait_for(self, revision: int, timeout: float) -> None: ...  # noqa: ASYNC109  # as the feed's


class Siblings:
    """One worker's view of the others: its slot on the board and its socket."""

    def __init__(self, worker: WorkerSlot, *, sync_timeout: float) -> None:
        self.directory = directory = worker.directory
        self.slot = slot = worker.slot
        self.board = Board(directory, worker.slots)
        self.sync_timeout = sync_timeout
        self.sync_timeouts = 0  # writes that returned before every worker applied them
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = socket_path(directory, slot)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this slot's previous process
        self._sock.bind(path)
        self._sock.setblocking(False)
        self._acked = asyncio.Event()
        self._feed: Feed | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def head(self) -> int:
        return self.board.head()

    def attach(self, feed: Feed, applied: int) -> None:
        """Starts listening for the others' nudges, which ``feed`` acts on; ``applied`` is the
        engine's revision now."""
        self._feed = feed
        self.board.set_applied(self.slot, applied)
        self.board.set_state(self.slot, STARTING, os.getpid())
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._receive)

    def serving(self) -> None:
        self.board.set_state(self.slot, SERVING)

    def leaving(self) -> None:
        """This worker drains: writes stop waiting for it."""
        self.board.set_state(self.slot, DOWN)

    def applied(self, revision: int) -> None:
        """The engine applied ``revision`` (an engine watcher)."""
        self.board.set_applied(self.slot, revision)

    def committed(self, revision: int, change: ChangeSet) -> None:
        """A write of this worker committed ``revision``: the others are nudged, with the
        change when it is small enough."""
        message = _MESSAGE.pack(_NUDGE, self.slot, revision)
        carried = json.dumps([change.org_id, change.kind, change.payload()], separators=(",", ":")).encode()
        if len(carried) <= CARRIED_MAX:
            message += carried
        for slot in range(self.board.slots):
            if slot != self.slot and self.board.state(slot) != DOWN:
                self._send(slot, message)

    async def applied_everywhere(self, revision: int) -> None:
        """Returns once every other serving worker has applied ``revision``, or after
        ``sync_timeout`` (counted and logged). Either way the revision is then recorded as
        returned: a worker that has not applied it waits for it before it decides."""
        try:
            await self._until_applied(revision)
        finally:
            self.board.set_returned(self.slot, revision)

    async def _until_applied(self, revision: int) -> None:
        deadline = time.monotonic() + self.sync_timeout
        while True:
            self._acked.clear()
            behind = self._behind(revision)
            if not behind:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.sync_timeouts += 1
                log.warning(
                    "revision %d: worker(s) %s did not apply it within %.2f s; their decisions wait for it",
                    revision,
                    behind,
                    self.sync_timeout,
                )
                return
            with contextlib.suppress(asyncio.TimeoutError):
                # An acknowledgement wakes this at once; the short timeout covers a worker that
                # applied it through its own poll and a state change by the supervisor.
                await asyncio.wait_for(self._acked.wait(), min(remaining, 0.05))

    def _behind(self, revision: int) -> list[int]:
        board = self.board
        return [
            slot
            for slot in range(board.slots)
            if slot != self.slot and board.state(slot) == SERVING and board.applied(slot) < revision
        ]

    def _send(self, slot: int, message: bytes) -> None:
        with contextlib.suppress(OSError):  # gone or restarting: it catches up from the store before serving
            self._sock.sendto(message, socket_path(self.directory, slot))

    def _receive(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MESSAGE.size + CARRIED_MAX)
            except (BlockingIOError, InterruptedError):
                return
            if len(data) < _MESSAGE.size:
                continue
            kind, sender, revision = _MESSAGE.unpack_from(data)
            if kind == _ACK:
                self._acked.set()
            elif kind == _NUDGE and self._feed is not None:
                change = None
                if len(data) > _MESSAGE.size:
                    with contextlib.suppress(ValueError, TypeError):  # unreadable: polled for instead
                        org_id, change_kind, payload = json.loads(data[_MESSAGE.size :])
                        change = ChangeSet.from_payload(org_id, change_kind, payload)
                if change is None:
                    self._nudged(self._feed, revision)
                task = asyncio.create_task(self._acknowledge(self._feed, sender, revision, change))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _nudged(feed: Feed, revision: int) -> None:
        feed.observe_head(revision)
        feed.nudge()

    async def _acknowledge(self, feed: Feed, sender: int, revision: int, change: ChangeSet | None) -> None:
        if change is not None:
            try:
                await feed.applied_locally(revision, change)
            except Unavailable:  # not the next revision and the store cannot be read: the feed retries
                self._nudged(feed, revision)
        with contextlib.suppress(StaleRevision):
            await feed.wait_for(revision, self.sync_timeout)
            self._send(sender, _MESSAGE.pack(_ACK, self.slot, revision))

    def close(self) -> None:
        """This worker stops: marked down, its socket removed."""
        with contextlib.suppress(RuntimeError):  # no running loop
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        for task in self._tasks:
            task.cancel()
        self.board.set_state(self.slot, DOWN)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path(self.directory, self.slot))
        self.board.close()
