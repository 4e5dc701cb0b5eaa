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
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from orgauthz.domain.policy import PolicySet
from orgauthz.store.db import open_store
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from orgauthz.v1 import management_pb2_grpc as mpb_grpc
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
def worker_db(request: pytest.FixtureRequest, tmp_path: Path, policy: PolicySet) -> Iterator[str]:
    """A migrated, seeded database (REPLICAS_SEED) on SQLite or the shared PostgreSQL cluster."""
    if request.param == "sqlite":
        yield seeded_sqlite(tmp_path, policy)
        return
    pg: PgCluster = request.getfixturevalue("pg")
    name = f"workers_{os.getpid()}_{int(time.monotonic() * 1000)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    url = pg.url(name)
    seed_database(url, policy)
    yield url
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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


async def test_a_worker_behind_a_returned_write_waits_for_it(tmp_path: Path, policy: PolicySet) -> None:
    """The write's wait for the other workers cut to a millisecond (as if one were stuck): the
    workers that have not applied it yet must still not answer from before it."""
    url = seeded_sqlite(tmp_path, policy)
    served = serve(url, "", tmp_path / "serve.log", ORGAUTHZ_WORKER_SYNC_TIMEOUT_S="0.001")
    await grants_and_revokes_seen_everywhere(served, url, "")


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
                    writer.access = pb_grpc_access(chans[i % CHANNELS])
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


def pb_grpc_access(channel: grpc.aio.Channel) -> mpb_grpc.AccessServiceStub:
    return mpb_grpc.AccessServiceStub(channel)
