"""``orgauthz serve --workers N`` (SPEC §3, §5): one server, several processes, one answer.

Each test runs the real command and talks to it over many channels, each its own TCP
connection, so calls land on every worker (the kernel spreads connections over the
processes listening with SO_REUSEPORT; :func:`connections_by_worker` checks that they did).
The change feed's poll interval is 5 s: what a worker learns in time, it learns from its
siblings (a nudge, then the write waiting for every worker), or from Redis when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.siblings import Board, WorkerSlot, create_board
from orgauthz.errors import Unavailable
from orgauthz.store.db import open_store
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from orgauthz.v1 import management_pb2_grpc as mpb_grpc
from tests.conftest import settings_for
from tests.replicas.conftest import seed_database
from tests.replicas.harness import USERS, WORKSPACES, Writer, _orgauthz_command
from tests.support.services import PgCluster, RedisServer, free_port

pytestmark = [pytest.mark.slow]

LISTENING = re.compile(r"orgauthz listening on (\S+):(\d+) \(gRPC, (\d+) workers\)")
CHANNELS = 16


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        """The worker processes' ids (the supervisor's children)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def serve(database_url: str, redis_url: str, log: Path, *extra: str, workers: int = 2, **env: str) -> Served:
    """Starts ``orgauthz serve --workers`` on a free port; returns once it printed where it listens."""
    port = free_port()
    cmd = [
        *_orgauthz_command(),
        "serve",
        "--workers",
        str(workers),
        "--database-url",
        database_url,
        "--listen",
        f"127.0.0.1:{port}",
        "--metrics-listen",
        "",
        "--insecure-dev",
        *(["--redis-url", redis_url] if redis_url else []),
        *extra,
    ]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORGAUTHZ_")}
    full_env.update({"ORGAUTHZ_POLL_INTERVAL_S": "5", **env})
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(proc, port, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            assert (int(found.group(2)), int(found.group(3))) == (port, workers)
            return served
        if proc.poll() is not None:
            raise AssertionError(f"serve --workers exited with {proc.returncode}:\n{served.log_tail()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve --workers did not start:\n{served.log_tail()}")


def stop(served: Served) -> int:
    served.proc.send_signal(signal.SIGTERM)
    try:
        return served.proc.wait(30)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()
        raise


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def connections_by_worker(served: Served) -> dict[int, int]:
    """Established connections to the server's port, by the worker process holding them."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == served.port and fields[3] == "01":
                inodes.add(fields[9])
    held: dict[int, int] = {}
    for pid in served.workers():
        count = 0
        with contextlib.suppress(FileNotFoundError, PermissionError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        count += 1
        held[pid] = count
    return held


@contextlib.asynccontextmanager
async def channels(address: str, n: int = CHANNELS) -> AsyncIterator[list[grpc.aio.Channel]]:
    """``n`` channels, each with its own connection (no shared subchannel pool)."""
    opened = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(n)]
    try:
        for ch in opened:
            await ch.channel_ready()
        yield opened
    finally:
        for ch in opened:
            await ch.close()


async def answers(chans: list[grpc.aio.Channel], user: str, ws: str) -> list[bool]:
    """One Check on every channel, at once, without min_revision."""
    request = pb.CheckRequest(subject=f"user:{user}", workspace=ws, scope="see_flows")
    got = await asyncio.gather(*(pb_grpc.AuthorizationServiceStub(ch).Check(request, timeout=10) for ch in chans))
    return [r.allowed for r in got]


def seeded_sqlite(directory: Path, policy: PolicySet) -> str:
    url = f"sqlite:///{directory / 'workers.db'}"
    db = open_store(url)
    db.migrate()
    db.dispose()
    seed_database(url, policy)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def worker_db(request: pytest.FixtureRequest, tmp_path: Path, policy: PolicySet) -> str:
    """A migrated, seeded database (REPLICAS_SEED) on SQLite or the shared PostgreSQL cluster."""
    if request.param == "sqlite":
        return seeded_sqlite(tmp_path, policy)
    return str(request.getfixturevalue("worker_db_pg"))


@pytest.fixture(params=["no-redis", "redis"])
def worker_redis(request: pytest.FixtureRequest) -> str:
    if request.param == "no-redis":
        return ""
    server: RedisServer = request.getfixturevalue("redis")
    return server.url


async def test_every_worker_reflects_a_write_when_it_returns(worker_db: str, worker_redis: str, tmp_path: Path) -> None:
    """SPEC §3 for the server as a whole: grants and revokes through one channel (so through
    one worker or another), and every channel answers them at once, without min_revision."""
    await grants_and_revokes_seen_everywhere(serve(worker_db, worker_redis, tmp_path / "serve.log"), worker_db, "")


async def test_a_decision_waits_for_a_write_another_worker_returned(tmp_path: Path, policy: PolicySet) -> None:
    """The decisions' own check, alone: a worker (in process, its feed polling every 5 s) is
    told on the board that another worker returned revision R, which it has not applied and
    was not nudged about. Its Checks must answer at R (its feed reads R when asked), both for
    a grant and for the revoke after it, never from before."""
    url = seeded_sqlite(tmp_path, policy)
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    create_board(board_dir, 2)
    app = App(settings_for(url, poll_interval_s=5.0), worker=WorkerSlot(board_dir, 0, 2))
    await app.start()
    board = Board(board_dir, 2)
    writer = Writer(url, "", None, publish=False)  # straight into the store: nobody is told
    try:
        async with grpc.aio.insecure_channel(app.address) as ch:
            check = pb_grpc.AuthorizationServiceStub(ch).Check
            ask = pb.CheckRequest(subject=f"user:{USERS[0]}", workspace=WORKSPACES[0], scope="see_flows")
            assert not (await check(ask)).allowed
            for before, after in ((None, "Viewer"), ("Viewer", None)):
                revision = await writer.set_role(USERS[0], WORKSPACES[0], before, after)
                board.set_returned(1, revision)  # worker 1 returned it
                got = await check(ask)
                assert (got.allowed, got.revision >= revision) == (after is not None, True), (before, after, got)
    finally:
        writer.close()
        board.close()
        await app.stop(0)


async def test_a_write_returns_after_the_sync_timeout_when_a_worker_is_stopped(
    tmp_path: Path, policy: PolicySet
) -> None:
    """One of two workers frozen (SIGSTOP): a write through the other returns after
    ORGAUTHZ_WORKER_SYNC_TIMEOUT_S, counted in orgauthz_worker_sync_timeouts_total; once the
    frozen worker runs again, every connection answers the write."""
    url = seeded_sqlite(tmp_path, policy)
    metrics = free_port()
    served = serve(
        url,
        "",
        tmp_path / "serve.log",
        "--metrics-listen",
        f"127.0.0.1:{metrics}",
        ORGAUTHZ_WORKER_SYNC_TIMEOUT_S="0.3",
    )
    frozen = served.workers()[1]
    try:
        async with channels(served.address) as chans:
            assert sorted(connections_by_worker(served).values())[0] > 0
            os.kill(frozen, signal.SIGSTOP)
            try:
                live = await channel_to_a_running_worker(served.address)
                writer = Writer(url, "", live)
                try:
                    started = time.monotonic()
                    await writer.set_role(USERS[1], WORKSPACES[1], None, "Viewer")
                    waited = time.monotonic() - started
                finally:
                    writer.close()
                    await live.close()
            finally:
                os.kill(frozen, signal.SIGCONT)
            assert waited >= 0.3
            assert await answers(chans, USERS[1], WORKSPACES[1]) == [True] * CHANNELS
        assert await asyncio.to_thread(sync_timeouts, metrics, 2) == 1
    finally:
        assert stop(served) == 0, served.log_tail()


def sync_timeouts(port: int, workers: int) -> float:
    """orgauthz_worker_sync_timeouts_total over every worker (worker i serves metrics on port + i)."""
    total = 0.0
    for i in range(workers):
        with urllib.request.urlopen(f"http://127.0.0.1:{port + i}/metrics", timeout=5) as resp:  # a local URL
            found = re.search(rf'orgauthz_worker_sync_timeouts_total{{worker="{i}"}} (\S+)', resp.read().decode())
        assert found, f"worker {i} does not count sync timeouts"
        total += float(found.group(1))
    return total


async def channel_to_a_running_worker(address: str) -> grpc.aio.Channel:
    """A connection that completes its HTTP/2 handshake within 0.5 s: not to a frozen worker."""
    for _ in range(50):
        ch = grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        try:
            await asyncio.wait_for(ch.channel_ready(), 0.5)
        except TimeoutError:
            await ch.close()
            continue
        return ch
    raise AssertionError("no connection reached a running worker")


async def grants_and_revokes_seen_everywhere(served: Served, database_url: str, redis_url: str) -> None:
    try:
        async with channels(served.address) as chans:
            spread = connections_by_worker(served)
            assert sorted(spread.values())[0] > 0, f"connections did not reach every worker: {spread}"
            assert len(spread) == 2
            writer = Writer(database_url, redis_url, chans[0])
            try:
                role: dict[tuple[str, str], str | None] = {}
                for i in range(24):
                    user, ws = USERS[i % 6], WORKSPACES[i % 3]
                    writer.access = mpb_grpc.AccessServiceStub(chans[i % CHANNELS])
                    before = role.get((user, ws))
                    after = None if before else "Viewer"
                    await writer.set_role(user, ws, before, after)
                    assert writer.via == "api"
                    role[(user, ws)] = after
                    got = await answers(chans, user, ws)
                    assert got == [after is not None] * CHANNELS, (
                        f"write {i} ({before} -> {after} for {user} in {ws}): answers {got}"
                    )
            finally:
                writer.close()
    finally:
        assert stop(served) == 0, served.log_tail()
    assert served.workers() == []


@dataclass
class Answer:
    sent: float
    answered: float
    pair: tuple[str, str]
    allowed: bool


@dataclass
class Write:
    pair: tuple[str, str]
    started: float
    returned: float
    allowed: bool


class Load:
    """Checks on every channel, all the time, over the pairs the writes touch; every answer
    and every error kept with the time its call was sent."""

    def __init__(
        self, chans: list[grpc.aio.Channel], pairs: list[tuple[str, str]], *, timeout: float = 10, wait: bool = True
    ) -> None:
        self.answers: list[Answer] = []
        self.errors: list[grpc.StatusCode] = []
        self.failed: list[tuple[float, grpc.StatusCode]] = []  # (sent, status)
        self.timeout = timeout
        self.wait = wait  # wait_for_ready: a call whose connection went away waits for another
        self._stop = False
        self._tasks = [asyncio.create_task(self._run(ch, pairs, i)) for i, ch in enumerate(chans)]

    async def _run(self, ch: grpc.aio.Channel, pairs: list[tuple[str, str]], offset: int) -> None:
        stub = pb_grpc.AuthorizationServiceStub(ch)
        i = offset
        while not self._stop:
            user, ws = pairs[i % len(pairs)]
            i += 1
            sent = time.monotonic()
            try:
                r = await stub.Check(
                    pb.CheckRequest(subject=f"user:{user}", workspace=ws, scope="see_flows"),
                    timeout=self.timeout,
                    wait_for_ready=self.wait,
                )
            except grpc.aio.AioRpcError as exc:
                self.errors.append(exc.code())
                self.failed.append((sent, exc.code()))
                continue
            self.answers.append(Answer(sent, time.monotonic(), (user, ws), r.allowed))

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    def wrong(self, writes: list[Write]) -> list[str]:
        """Answers to a Check sent after a write returned, and answered before the pair's next
        write began, that do not reflect it; before a pair's first write it is denied (the seed
        grants nothing). A Check that overlaps a write may answer either way."""
        by_pair: dict[tuple[str, str], list[Write]] = {}
        for w in writes:
            by_pair.setdefault(w.pair, []).append(w)
        out = []
        for a in self.answers:
            expected: bool | None = False
            for w in by_pair.get(a.pair, []):
                if a.sent < w.returned and w.started <= a.answered:
                    expected = None  # overlapping: either answer
                elif a.sent >= w.returned:
                    expected = w.allowed
            if expected is not None and a.allowed != expected:
                around = [
                    f"[{w.started:.3f}-{w.returned:.3f} {w.allowed}]"
                    for w in by_pair.get(a.pair, [])
                    if abs(w.started - a.sent) < 1.0
                ]
                out.append(f"{a.pair} sent at {a.sent:.3f}: {a.allowed}, expected {expected}; writes {around}")
        return out


async def write_until_done(
    writer: Writer, chans: list[grpc.aio.Channel], i: int, role: dict[tuple[str, str], str | None]
) -> Write:
    """Write ``i`` (grant or revoke of a pair), retried on another channel while UNAVAILABLE
    (its worker was killed under it: the store says whether it committed)."""
    user, ws = USERS[i % 6], WORKSPACES[i % 3]
    started = time.monotonic()
    for attempt in range(10):
        before = writer.stored_roles().get((user, ws))
        after = None if before else "Viewer"
        writer.access = mpb_grpc.AccessServiceStub(chans[(i + attempt) % len(chans)])
        try:
            await writer.set_role(user, ws, before, after)
        except Unavailable:
            await asyncio.sleep(0.2)
            if writer.stored_roles().get((user, ws)) == after:
                break
            continue
        break
    else:
        raise AssertionError(f"write {i} never succeeded")
    role[(user, ws)] = after
    return Write((user, ws), started, time.monotonic(), after is not None)


@pytest.mark.parametrize(
    ("store", "with_redis"), [pytest.param("sqlite", False, id="sqlite"), pytest.param("postgres", True, id="pg-redis")]
)
async def test_a_worker_killed_under_load_is_restarted_and_nothing_stale_is_answered(
    store: str, with_redis: bool, request: pytest.FixtureRequest, tmp_path: Path, policy: PolicySet
) -> None:
    """SIGKILL one of two workers while every channel checks and writes keep coming: the
    calls it had in flight fail UNAVAILABLE (nothing else fails), no answer sent after a
    write returned misses it, the supervisor starts a new worker, which serves only once
    caught up (it answers the writes made while it was away, at once, on fresh channels)."""
    url = seeded_sqlite(tmp_path, policy) if store == "sqlite" else request.getfixturevalue("worker_db_pg")
    redis_url = request.getfixturevalue("redis").url if with_redis else ""
    served = serve(url, redis_url, tmp_path / "serve.log")
    pairs = [(USERS[i % 6], WORKSPACES[i % 3]) for i in range(6)]
    writes: list[Write] = []
    role: dict[tuple[str, str], str | None] = {}
    try:
        async with channels(served.address) as chans:
            writer = Writer(url, redis_url, chans[0])
            load = Load(chans, pairs)
            try:
                victim = served.workers()[0]
                for i in range(30):
                    if i == 10:
                        os.kill(victim, signal.SIGKILL)
                    writes.append(await write_until_done(writer, chans, i, role))
                    await asyncio.sleep(0.05)
                deadline = time.monotonic() + 60
                while len(served.workers()) < 2 or victim in served.workers():
                    assert time.monotonic() < deadline, f"no worker replaced {victim}:\n{served.log_tail()}"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                for i in range(30, 36):  # the load keeps running across the restart
                    writes.append(await write_until_done(writer, chans, i, role))
            finally:
                await load.stop()
            assert not load.wrong(writes), load.wrong(writes)[:10]
            assert set(load.errors) <= {grpc.StatusCode.UNAVAILABLE}, load.errors
            assert len(load.errors) <= 4 * CHANNELS, len(load.errors)
            assert len(load.answers) > 500
            replaced = served.workers()
            assert victim not in replaced
            assert f"(pid {victim}) exited with status -9" in served.log.read_text()
            # Fresh channels reach the new worker only once it listens, caught up.
            deadline = time.monotonic() + 60
            while True:
                async with channels(served.address) as fresh:
                    spread = connections_by_worker(served)
                    if sorted(spread.values())[0] > 0:
                        for (user, ws), now in role.items():
                            assert await answers(fresh, user, ws) == [now is not None] * CHANNELS
                        break
                assert time.monotonic() < deadline, f"connections never reached both workers: {spread}"
            writer.close()
    finally:
        assert stop(served) == 0, served.log_tail()


@pytest.fixture
def worker_db_pg(pg: PgCluster, policy: PolicySet) -> Iterator[str]:
    """A migrated, seeded database (REPLICAS_SEED) of its own on the shared PostgreSQL cluster."""
    name = f"workers_{os.getpid()}_{int(time.monotonic() * 1000)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    url = pg.url(name)
    seed_database(url, policy)
    yield url
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_sigterm_drains_every_worker_and_frees_the_address(tmp_path: Path, policy: PolicySet) -> None:
    """SIGTERM to the supervisor: calls in flight are answered, every worker exits, the
    supervisor exits 0 and the port can be bound again."""
    url = seeded_sqlite(tmp_path, policy)
    served = serve(url, "", tmp_path / "serve.log", workers=3)
    pids = served.workers()
    assert len(pids) == 3
    async with channels(served.address) as chans:
        load = Load(chans, [(USERS[0], WORKSPACES[0])], timeout=5, wait=False)
        deadline = time.monotonic() + 30
        while len(load.answers) < 50:
            assert time.monotonic() < deadline, "the workers did not answer"
            await asyncio.sleep(0.05)
        signalled = time.monotonic()
        code = await asyncio.to_thread(stop, served)
        await load.stop()
    assert code == 0, served.log_tail()
    # A call that reaches a worker after it stopped accepting is refused (grpc answers
    # UNAVAILABLE, or CANCELLED for one that raced the shutdown); none fails otherwise.
    failed = {status for sent, status in load.failed if sent < signalled}
    assert failed <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, failed
    assert not [pid for pid in pids if running(pid)]
    with socket.socket() as s:  # as a server binds it (connections the workers closed linger in TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", served.port))
        s.listen()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "unix:/tmp/orgauthz-workers-test.sock"], "needs a TCP address"),
        (["--workers", "0"], "invalid configuration"),
        (["--workers", "many"], "invalid configuration"),
    ],
)
def test_refused_configurations_name_the_problem(args: list[str], message: str, tmp_path: Path) -> None:
    cmd = [*_orgauthz_command(), "serve", "--workers", "2", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGAUTHZ_")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    """As a lone server refuses it, even though the workers bind with SO_REUSEPORT."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [
            *_orgauthz_command(),
            "serve",
            "--workers",
            "2",
            "--listen",
            f"127.0.0.1:{port}",
            "--database-url",
            f"sqlite:///{tmp_path / 'x.db'}",
            "--insecure-dev",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORGAUTHZ_")}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, policy: PolicySet) -> None:
    """SIGKILL to the supervisor (nothing will restart or drain them): the workers notice and stop."""
    served = serve(seeded_sqlite(tmp_path, policy), "", tmp_path / "serve.log")
    pids = served.workers()
    assert len(pids) == 2
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait()
    deadline = time.monotonic() + 20
    while [pid for pid in pids if running(pid)]:
        assert time.monotonic() < deadline, f"workers still running: {pids}\n{served.log_tail()}"
        time.sleep(0.1)
    assert "the supervisor is gone; stopping" in served.log.read_text()
