"""Replicas as separate processes, a writer, and an oracle that knows every acknowledged write.

The oracle records, per (user, workspace), the role after each acknowledged write and the
revision it committed at. Every answer a replica gives carries the revision it reflects,
so each answer is checked exactly, after the stream: ``allowed`` must equal what the
acknowledged writes say at that revision. A stale allow is an allowed answer where the
oracle says deny.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import redis as sync_redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import bindparam, select

from orgauthz.domain import lines as L
from orgauthz.engine.pubsub import CHANNEL
from orgauthz.errors import Unavailable
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read
from orgauthz.store.db import blocking, open_store
from orgauthz.store.models import WorkspaceGrant
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpb_grpc
from tests.support.orgs import REPLICAS_ORG as ORG
from tests.support.orgs import REPLICAS_USERS as USERS
from tests.support.orgs import REPLICAS_WORKSPACES as WORKSPACES
from tests.support.services import free_port

_GRANT = select(WorkspaceGrant.role).where(
    WorkspaceGrant.workspace_id == bindparam("ws"), WorkspaceGrant.subject == bindparam("subject")
)
ADMIN = "user:admin"
ROLES: list[str | None] = [None, "Viewer", "Developer"]
# What each role answers for the two scopes the stream checks (roles.yaml: Developer inherits Viewer).
SCOPES = {"see_flows": {"Viewer", "Developer"}, "manage_flows": {"Developer"}}


def _orgauthz_command() -> list[str]:
    script = Path(sys.executable).with_name("orgauthz")
    return [str(script)] if script.exists() else [sys.executable, "-m", "orgauthz.cli"]


# -- replicas as processes -------------------------------------------------------------------


@dataclass
class Replica:
    """``orgauthz serve`` in its own process."""

    name: str
    database_url: str
    redis_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> None:
        cmd = [
            *_orgauthz_command(),
            "serve",
            "--database-url",
            self.database_url,
            "--listen",
            self.address,
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
            "--insecure-dev",
        ]
        if self.redis_url:
            cmd += ["--redis-url", self.redis_url]
        env = {**os.environ, "ORGAUTHZ_POLL_INTERVAL_S": "0.2", "ORGAUTHZ_MIGRATE": "false", **self.env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.health("") == "SERVING":
                return
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.name} not SERVING after {timeout} s:\n{self.log_tail()}")

    def health(self, service: str) -> str:
        try:
            with grpc.insecure_channel(self.address) as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        except grpc.RpcError as exc:
            return exc.code().name
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:  # fixed local URL
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the metrics endpoint (0 when absent)."""
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
        for line in self.metrics().splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def wait_health(replica: Replica, service: str, status: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(replica.health, service) == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{replica.name}: health of {service!r} never became {status}\n{replica.log_tail()}")


async def health_of(channel: grpc.aio.Channel, service: str) -> str:
    """The health status of ``service`` on ``channel``, or the status code of the failed call."""
    try:
        got = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(got.status))


async def eventually(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Returns once ``condition()`` holds; AssertionError naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.01)


class StallProxy:
    """A TCP proxy to redis-server, run on the test's event loop, that can stall what clients send.

    :meth:`stall_next` holds the next chunk any client sends for ``hold_s`` and then drops it
    with its connection: one command Redis never answers in time, Redis itself healthy.
    With ``blackhole`` set, every chunk is treated so (Redis unreachable, by timeouts).
    """

    def __init__(self, target_port: int, *, hold_s: float = 0.5) -> None:
        self.target_port = target_port
        self.hold_s = hold_s
        self.blackhole = False
        self.stalled = 0
        self._stall_next = False
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stall_next(self) -> None:
        self._stall_next = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._upstream(reader, up_writer, writer), self._pipe(up_reader, writer))

    async def _upstream(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.blackhole or self._stall_next:
                    self._stall_next = False
                    self.stalled += 1
                    await asyncio.sleep(self.hold_s)
                    break  # dropped, and the connection with it
                upstream.write(data)
                await upstream.drain()
        upstream.close()
        client.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


# -- the oracle --------------------------------------------------------------------------------


@dataclass
class Answer:
    replica: str
    user: str
    workspace: str
    scope: str
    allowed: bool
    revision: int
    min_revision: int


@dataclass
class Oracle:
    base: int
    history: dict[tuple[str, str], list[tuple[int, str | None]]] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    acknowledged: int = 0  # the newest acknowledged revision

    def record(self, user: str, ws: str, revision: int, role: str | None) -> None:
        self.history.setdefault((user, ws), [(0, None)]).append((revision, role))
        self.acknowledged = max(self.acknowledged, revision)

    def role(self, user: str, ws: str) -> str | None:
        return self.history.get((user, ws), [(0, None)])[-1][1]

    def role_at(self, user: str, ws: str, revision: int) -> str | None:
        role: str | None = None
        for rev, r in self.history.get((user, ws), [(0, None)]):
            if rev <= revision:
                role = r
        return role

    def expected(self, user: str, ws: str, scope: str, revision: int) -> bool:
        return self.role_at(user, ws, revision) in SCOPES[scope]

    def wrong(self) -> tuple[list[Answer], list[Answer]]:
        """(stale allows, other wrong answers), including answers older than their min_revision."""
        stale, wrong = [], []
        for a in self.answers:
            expected = self.expected(a.user, a.workspace, a.scope, a.revision)
            if a.revision < a.min_revision or a.allowed != expected:
                (stale if a.allowed and not expected else wrong).append(a)
        return stale, wrong


# -- writes ---------------------------------------------------------------------------------


class Writer:
    """Sets a user's role in a workspace: through replica A's AccessService when it exists
    (UNIMPLEMENTED otherwise), else straight into the store with the change lines
    ``Management.write`` would record, followed by the pub/sub nudge unless ``publish`` is off."""

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        channel: grpc.aio.Channel | None,
        *,
        publish: bool = True,
        org: str = ORG,
        actor: str = ADMIN,
    ) -> None:
        self.db = open_store(database_url)
        self.org = org
        self.actor = actor
        self.redis_url = redis_url
        self.publish = publish
        self.access = mpb_grpc.AccessServiceStub(channel) if channel is not None else None
        self.via = "store"

    def close(self) -> None:
        self.db.dispose()

    async def set_role(self, user: str, ws: str, before: str | None, role: str | None) -> int:
        """The committed revision. Raises Unavailable when the write was not committed."""
        if self.access is not None:
            try:
                rev = await self._via_api(user, ws, before, role)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    self.access = None
                elif exc.code() == grpc.StatusCode.UNAVAILABLE:
                    raise Unavailable(exc.details() or "unavailable") from exc
                else:
                    raise
            else:
                self.via = "api"
                return rev
        rev = await asyncio.to_thread(self._via_store, user, ws, before, role)
        if self.publish and self.redis_url:
            await asyncio.to_thread(self._publish, rev)
        return rev

    async def _via_api(self, user: str, ws: str, before: str | None, role: str | None) -> int:
        assert self.access is not None
        md = [("x-orgauthz-actor", self.actor)]
        subject = f"user:{user}"
        if role is None:
            r = await self.access.RevokeWorkspaceAccess(
                mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject), metadata=md, timeout=10
            )
        elif before is None:
            r = await self.access.GrantWorkspaceAccess(
                mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role), metadata=md, timeout=10
            )
        else:
            r = await self.access.ChangeWorkspaceAccess(
                mpb.ChangeWorkspaceAccessRequest(workspace=ws, subject=subject, role=role), metadata=md, timeout=10
            )
        return int(r.revision)

    def _via_store(self, user: str, ws: str, before: str | None, role: str | None) -> int:
        subject = f"user:{user}"

        def decide(at: Locked) -> Decision[None]:
            decision: Decision[None] = Decision(None, change=at.change())
            assert decision.change is not None
            for row in at["grant"]:
                decision.writes.append(store.delete(WorkspaceGrant, workspace_id=ws, subject=subject))
                decision.change.remove.append(L.grant_line(subject, ws, row.role))
            if role is not None:
                decision.writes.append(
                    store.insert(
                        WorkspaceGrant,
                        {
                            "workspace_id": ws,
                            "subject": subject,
                            "org_id": self.org,
                            "role": role,
                            "created_at": at.now,
                        },
                    )
                )
                decision.change.add.append(L.grant_line(subject, ws, role))
            return decision

        reads: dict[str, Read] = {"grant": (_GRANT, {"ws": ws, "subject": subject})}
        return blocking(self.db, lambda: self.db.commit(self.org, "workspace_access.set", reads, decide)).revision

    def _publish(self, revision: int) -> None:
        with contextlib.suppress(sync_redis.RedisError, OSError):
            client = sync_redis.Redis.from_url(self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            client.publish(CHANNEL, str(revision))
            client.close()

    def stored_roles(self) -> dict[tuple[str, str], str]:
        with self.db.read() as s:
            rows = s.execute(
                select(WorkspaceGrant.subject, WorkspaceGrant.workspace_id, WorkspaceGrant.role).where(
                    WorkspaceGrant.org_id == self.org
                )
            ).all()
        return {(sub.removeprefix("user:"), ws): role for sub, ws, role in rows}


# -- the stream ------------------------------------------------------------------------------


@dataclass
class Stream:
    """Writes on A; B is checked continuously; every write is followed until B reflects it."""

    writer: Writer
    oracle: Oracle
    a: Replica
    b: Replica
    seed: int = 0
    followed: int = 0  # the newest revision seen on B by :meth:`follow`
    propagation_ms: list[float] = field(default_factory=list)
    rpc_errors: dict[str, int] = field(default_factory=dict)
    _stubs: dict[str, Any] = field(default_factory=dict)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    def stub(self, replica: Replica) -> pb_grpc.AuthorizationServiceStub:
        key = f"{replica.name}:{replica.port}"
        if key not in self._stubs:
            ch = grpc.aio.insecure_channel(replica.address)
            self._channels.append(ch)
            self._stubs[key] = pb_grpc.AuthorizationServiceStub(ch)
        return self._stubs[key]

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    async def check(self, replica: Replica, user: str, ws: str, scope: str, min_revision: int = 0) -> Answer | None:
        """One Check, recorded for the oracle; None when the replica could not answer."""
        try:
            r = await self.stub(replica).Check(
                pb.CheckRequest(subject=f"user:{user}", workspace=ws, scope=scope, min_revision=min_revision), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            name = f"{replica.name}:{exc.code().name}"
            self.rpc_errors[name] = self.rpc_errors.get(name, 0) + 1
            return None
        a = Answer(replica.name, user, ws, scope, r.allowed, int(r.revision), min_revision)
        self.oracle.answers.append(a)
        return a

    async def write_one(self, rng: random.Random) -> tuple[str, str, int]:
        user, ws = rng.choice(USERS), rng.choice(WORKSPACES)
        before = self.oracle.role(user, ws)
        role = rng.choice([r for r in ROLES if r != before])
        rev = await self.writer.set_role(user, ws, before, role)
        self.oracle.record(user, ws, rev, role)
        return user, ws, rev

    async def follow(self, user: str, ws: str, rev: int, within: float = 15.0) -> None:
        """Checks B (no min_revision) until it answers at ``rev`` or later; records the latency."""
        start = time.perf_counter()
        while time.perf_counter() - start < within:
            a = await self.check(self.b, user, ws, "see_flows")
            if a is not None and a.revision >= rev:
                self.propagation_ms.append((time.perf_counter() - start) * 1000)
                self.followed = max(self.followed, rev)
                return
            await asyncio.sleep(0.001 if a is not None else 0.05)
        raise AssertionError(f"revision {rev} ({user} in {ws}) never visible on {self.b.name}\n{self.b.log_tail()}")

    async def fresh_checks(self, user: str, ws: str, rev: int) -> None:
        """Checks carrying the write's min_revision, on both replicas and both scopes."""
        for replica in (self.a, self.b):
            for scope in SCOPES:
                a = await self.check(replica, user, ws, scope, min_revision=rev)
                assert a is None or a.revision >= rev

    async def background(self, stop: asyncio.Event, rng: random.Random) -> int:
        """Random Checks on B, half of them carrying the newest revision already seen there
        (a newer one would nudge B's feed and hide how changes really propagate)."""
        n = 0
        while not stop.is_set():
            min_rev = self.followed if n % 2 else 0
            a = await self.check(self.b, rng.choice(USERS), rng.choice(WORKSPACES), rng.choice(list(SCOPES)), min_rev)
            n += 1
            await asyncio.sleep(0 if a is not None else 0.05)
        return n

    async def run(
        self, writes: int, *, hook: Callable[[int], Awaitable[None]] | None = None, follow: bool = True
    ) -> int:
        """``writes`` acknowledged writes; ``hook(i)`` runs before the i-th. Returns background checks."""
        rng = random.Random(self.seed)
        stop = asyncio.Event()
        bg = asyncio.create_task(self.background(stop, random.Random(self.seed + 1)))
        try:
            for i in range(writes):
                if hook is not None:
                    await hook(i)
                user, ws, rev = await self.write_one(rng)
                if follow:
                    await self.follow(user, ws, rev)
                await self.fresh_checks(user, ws, rev)
        finally:
            stop.set()
            n = await bg
        return n

    def verify(self, label: str) -> None:
        stale, wrong = self.oracle.wrong()
        n = len(self.oracle.answers)
        print(
            f"\n[{label}] writes via {self.writer.via}: {len(self.propagation_ms)} followed, "
            f"{n} answers checked, {len(stale)} stale allows, {len(wrong)} other wrong, "
            f"rpc errors {self.rpc_errors or 'none'}"
        )
        if self.propagation_ms:
            print(f"[{label}] propagation to the other replica: {summary(self.propagation_ms)}")
        assert not stale, f"stale allows: {stale[:5]}"
        assert not wrong, f"wrong answers: {wrong[:5]}"

    def assert_store_matches(self) -> None:
        """No acknowledged write lost, nothing unacknowledged written."""
        expected = {k: h[-1][1] for k, h in self.oracle.history.items() if h[-1][1] is not None}
        assert self.writer.stored_roles() == expected


def summary(ms: list[float]) -> str:
    if not ms:
        return "no samples"
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return f"p50 {statistics.median(ms):.1f} ms, p99 {q[98]:.1f} ms, max {max(ms):.1f} ms (n={len(ms)})"
