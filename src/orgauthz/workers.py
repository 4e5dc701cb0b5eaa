"""``orgauthz serve --workers N``: a supervisor and N worker processes on one address.

grpc.aio answers on one core per process, so a server uses more cores with more processes.
The supervisor migrates the database once, reserves the address (its port, when 0 was
asked for) and starts N workers, each a full server (:class:`~orgauthz.api.server.App`)
with its own engine, caches and change feed, listening on that address with
``SO_REUSEPORT``: the kernel spreads connections over the workers that listen.

What the workers share (the board and their nudges) is in :mod:`orgauthz.engine.siblings`:
a write returns once every serving worker has applied it, and no worker decides from before
a write the server returned. A worker listens only once it has caught up with the store, so
a restarted one is not routed to before. The supervisor restarts a worker that exits
(after 0.5 s, doubling to 10 s while it keeps dying within 10 s of starting), and on
SIGTERM or SIGINT asks every worker to drain and waits for them. A worker whose supervisor
is gone stops itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orgauthz.config import Settings
from orgauthz.engine.siblings import DOWN, SERVING, Board, WorkerSlot, create_board

log = logging.getLogger(__name__)

RESTART_FIRST_S, RESTART_MAX_S, STABLE_S = 0.5, 10.0, 10.0
DRAIN_S = 15.0  # after SIGTERM, how long workers may take before they are killed


def worker_count(value: str) -> int:
    """``auto``: the cores this process may run on; otherwise the number."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(value)


def split_address(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as host and port; ValueError otherwise."""
    if listen.startswith("unix:"):
        raise ValueError(
            "--workers above 1 needs a TCP address: a Unix socket has one listener (run one server per socket)"
        )
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"cannot listen on {listen}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104  # the address the operator gave


def reserve(listen: str) -> tuple[socket.socket, str]:
    """Binds the address with SO_REUSEPORT, without listening, for as long as the supervisor
    runs: the port stays this server's (a port of 0 becomes a real one, which the workers are
    given) and connections only reach workers that listen. Refuses an address already bound."""
    host, port = split_address(listen)
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    if port:  # taken by anyone, with or without SO_REUSEPORT: refused, as a lone server would be
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(address)
            except OSError as exc:
                raise ValueError(f"cannot listen on {listen}: {exc.strerror}") from None
    held = socket.socket(family, kind, proto)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        held.bind(address)
    except OSError as exc:
        held.close()
        raise ValueError(f"cannot listen on {listen}: {exc.strerror}") from None
    bound = held.getsockname()[1]
    head = listen.rpartition(":")[0]
    return held, f"{head}:{bound}"


def worker_metrics(listen: str, slot: int) -> str:
    """Worker ``slot``'s metrics address: the configured port plus the slot (0: any port)."""
    if not listen:
        return ""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + slot}" if port.isdigit() and int(port) else listen


class Supervisor:
    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.address = settings.listen
        self.directory = Path(tempfile.mkdtemp(prefix="orgauthz-workers-"))
        create_board(self.directory, workers)
        self.board = Board(self.directory, workers)
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._held: socket.socket | None = None

    def _spec(self, slot: int) -> bytes:
        """What worker ``slot`` is told on its standard input (JSON; not in its environment,
        which other processes of the user can read: the settings hold secrets)."""
        s = self.settings.model_copy(
            update={
                "listen": self.address,
                "migrate": False,  # the supervisor did
                "metrics_listen": worker_metrics(self.settings.metrics_listen, slot),
            }
        )
        spec = {"slot": slot, "slots": self.workers, "directory": str(self.directory), "parent": os.getpid()}
        return json.dumps({**spec, "settings": json.loads(s.model_dump_json())}).encode()

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orgauthz.workers", stdin=asyncio.subprocess.PIPE
        )
        assert proc.stdin is not None
        proc.stdin.write(self._spec(slot))
        await proc.stdin.drain()
        proc.stdin.close()
        self.procs[slot] = proc
        return proc

    async def start(self, stop: asyncio.Event) -> bool:
        """Reserves the address and starts every worker; True once all serve, False when
        ``stop`` is set first. RuntimeError when one exits first (it could not bind, load or
        reach the store)."""
        self._held, self.address = reserve(self.settings.listen)
        for slot in range(self.workers):
            await self._spawn(slot)
        while not all(self.board.state(slot) == SERVING for slot in range(self.workers)):
            if stop.is_set():
                return False
            for slot, proc in self.procs.items():
                if proc.returncode is not None:
                    raise RuntimeError(f"worker {slot} exited with status {proc.returncode} while starting")
            await asyncio.sleep(0.02)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Restarts workers that exit until ``stop`` is set; then drains them all."""
        watchers = [asyncio.create_task(self._watch(slot)) for slot in range(self.workers)]
        await stop.wait()
        self._stopping = True
        for task in watchers:
            task.cancel()
        await self.drain()

    async def _watch(self, slot: int) -> None:
        delay = RESTART_FIRST_S
        while True:
            proc = self.procs[slot]
            started = time.monotonic()
            code = await proc.wait()
            self.board.set_state(slot, DOWN)
            if self._stopping:
                return
            delay = RESTART_FIRST_S if time.monotonic() - started > STABLE_S else min(delay * 2, RESTART_MAX_S)
            log.warning("worker %d (pid %d) exited with status %s; restarting in %.1f s", slot, proc.pid, code, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(slot)

    async def drain(self) -> None:
        """SIGTERM to every worker (each stops accepting, finishes its calls and exits);
        killed after :data:`DRAIN_S`."""
        live = [p for p in self.procs.values() if p.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in live:
            try:
                await asyncio.wait_for(proc.wait(), DRAIN_S)
            except TimeoutError:
                log.warning("worker pid %d did not drain within %.0f s; killed", proc.pid, DRAIN_S)
                proc.kill()
                await proc.wait()

    def close(self) -> None:
        self.board.close()
        if self._held is not None:
            self._held.close()
        shutil.rmtree(self.directory, ignore_errors=True)


async def _worker(spec: dict[str, Any]) -> int:
    from orgauthz.api.server import App

    settings = Settings.model_validate(spec["settings"])
    slot = WorkerSlot(Path(spec["directory"]), int(spec["slot"]), int(spec["slots"]))
    app = App(settings, worker=slot)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = int(spec["parent"])

    async def orphaned() -> None:  # the supervisor was killed: nobody drains or restarts us
        while os.getppid() == parent:  # noqa: ASYNC110  # nothing signals a parent's death to an event
            await asyncio.sleep(1.0)
        log.warning("worker %d: the supervisor is gone; stopping", slot.slot)
        stop.set()

    watch = asyncio.create_task(orphaned())
    await stop.wait()
    watch.cancel()
    await app.stop()
    return 0


def main() -> int:
    """A worker process's entry point (``python -m orgauthz.workers``, started by the supervisor)."""
    from orgauthz.logs import configure

    spec = json.loads(sys.stdin.read())
    settings = spec["settings"]
    configure(settings["log_format"], settings["log_level"])
    return asyncio.run(_worker(spec))


if __name__ == "__main__":
    raise SystemExit(main())
