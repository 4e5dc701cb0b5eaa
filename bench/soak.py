"""Soak: a bounded mixed workload on two replicas (PostgreSQL + Redis) for a set time.

    python -m bench.soak --seconds 300      # `make soak` (not part of `make test`)

It starts a throw-away PostgreSQL cluster and redis-server, seeds one organization, starts
two ``orgauthz serve`` processes, and runs at a bounded rate: Checks on both replicas,
grants/changes/revokes, invitations (created and accepted), and service-account key
rotations (the rotated-away key must stop working). Every Check is compared with what the
acknowledged writes say. Each interval it prints p99 latency per kind and both replicas'
resident memory. It exits 1 when any call failed or was wrong, or when resident memory
grew more than 5% between the end of warm-up and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from orgauthz.domain.policy import load_policy
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.replicas.harness import Replica
from tests.support.services import pg_cluster, redis_server

USERS = [f"u{i}" for i in range(200)]
WORKSPACES = [f"w{i}" for i in range(10)]
HOLDERS = {"see_flows": {"Viewer", "Developer"}, "manage_flows": {"Developer"}}
ADMIN = (("x-orgauthz-actor", "user:admin"),)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, replicas: list[Replica], seconds: float, warmup: float, interval: float, rate: int) -> None:
        self.replicas, self.seconds, self.warmup, self.interval, self.rate = replicas, seconds, warmup, interval, rate
        self.roles: dict[tuple[str, str], str | None] = {}
        self.head = 0
        self.lat: dict[str, list[float]] = {}
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self.wrong = 0
        self.wrong_detail: list[str] = []
        self.inflight: dict[tuple[str, str], str | None] = {}  # a write sent, not yet acknowledged
        self.members = 0
        self.lock = asyncio.Lock()
        self.rotating = asyncio.Lock()

    def record(self, kind: str, start: float) -> None:
        self.lat.setdefault(kind, []).append((time.perf_counter() - start) * 1000)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    async def check(self, authz: Any, rng: random.Random) -> None:
        user, ws, scope = rng.choice(USERS), rng.choice(WORKSPACES), rng.choice(list(HOLDERS))
        async with self.lock:
            role, head = self.roles.get((user, ws)), self.head
            flying = self.inflight.get((user, ws), role)
        start = time.perf_counter()
        r = await authz.Check(
            apb.CheckRequest(subject=f"user:{user}", workspace=ws, scope=scope, min_revision=head), timeout=10
        )
        self.record("check", start)
        async with self.lock:  # a write to this key may have committed or been acknowledged meanwhile
            now = self.roles.get((user, ws))
            flying_now = self.inflight.get((user, ws), now)
        possible = {role, flying, now, flying_now}
        if r.allowed not in {p in HOLDERS[scope] for p in possible}:
            self.wrong += 1
            self.wrong_detail.append(f"Check {user} {ws} {scope} -> {r.allowed} at {r.revision}; roles {possible}")

    async def write(self, access: Any, rng: random.Random) -> None:
        user, ws = rng.choice(USERS), rng.choice(WORKSPACES)
        async with self.lock:
            if (user, ws) in self.inflight:
                return  # one write per key at a time
            before = self.roles.get((user, ws))
            role = rng.choice([r for r in ("Viewer", "Developer", None) if r != before])
            self.inflight[(user, ws)] = role
        subject = f"user:{user}"
        start = time.perf_counter()
        try:
            if role is None:
                resp = await access.RevokeWorkspaceAccess(
                    mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject), metadata=ADMIN, timeout=10
                )
            elif before is None:
                resp = await access.GrantWorkspaceAccess(
                    mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                    metadata=ADMIN,
                    timeout=10,
                )
            else:
                resp = await access.ChangeWorkspaceAccess(
                    mpb.ChangeWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                    metadata=ADMIN,
                    timeout=10,
                )
            self.record("write", start)
            async with self.lock:
                self.roles[(user, ws)] = role
                self.head = max(self.head, int(resp.revision))
        finally:
            async with self.lock:
                self.inflight.pop((user, ws), None)

    async def invite(self, inv: Any, members: Any, n: int) -> None:
        user, email = f"joiner{n}", f"joiner{n}@example.test"
        start = time.perf_counter()
        r = await inv.CreateInvitations(
            ipb.CreateInvitationsRequest(organization="acme", emails=[email]), metadata=ADMIN, timeout=10
        )
        await inv.AcceptInvitation(
            ipb.AcceptInvitationRequest(token=r.results[0].token, email=email),
            metadata=(("x-orgauthz-actor", f"user:{user}"),),
            timeout=10,
        )
        # Keep the organization bounded: the new member leaves again.
        await members.RemoveMember(
            mpb.RemoveMemberRequest(organization="acme", user_id=user), metadata=ADMIN, timeout=10
        )
        self.record("invitation", start)

    async def rotate(self, sas: Any, authz: Any, key: list[str]) -> None:
        async with self.rotating:  # one rotation at a time: each checks the key it retired
            await self._rotate(sas, authz, key)

    async def _rotate(self, sas: Any, authz: Any, key: list[str]) -> None:
        start = time.perf_counter()
        r = await sas.RotateServiceAccountKey(
            spb.RotateServiceAccountKeyRequest(organization="acme", id="bot"), metadata=ADMIN, timeout=10
        )
        old, key[0] = key[0], r.api_key
        self.record("rotation", start)
        try:
            await authz.Authenticate(apb.AuthenticateRequest(api_key=old), timeout=10)
            self.wrong += 1  # the old key must stop at once (no grace period)
            self.wrong_detail.append("a rotated-away key still worked")
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
        ok = await authz.Authenticate(apb.AuthenticateRequest(api_key=key[0]), timeout=10)
        if ok.service_account != "bot":
            self.wrong += 1
            self.wrong_detail.append("the new key did not resolve to its service account")

    async def run(self) -> int:
        channels = [grpc.aio.insecure_channel(r.address) for r in self.replicas]
        authz = [apbg.AuthorizationServiceStub(c) for c in channels]
        access = mpbg.AccessServiceStub(channels[0])
        inv, members = ipbg.InvitationServiceStub(channels[0]), mpbg.MemberServiceStub(channels[0])
        sas = spbg.ServiceAccountServiceStub(channels[0])
        created = await sas.CreateServiceAccount(
            spb.CreateServiceAccountRequest(organization="acme", id="bot", name="bot"), metadata=ADMIN
        )
        key = [created.api_key]
        rng = random.Random(1)
        start = time.monotonic()
        next_report = start + self.interval
        baseline: list[int] | None = None
        rss_series: list[list[int]] = []
        tick = 0
        pending: set[asyncio.Task[None]] = set()
        print(
            f"soak: {self.seconds:.0f} s, warm-up {self.warmup:.0f} s, {self.rate} operations/s, "
            f"replicas {[r.address for r in self.replicas]}"
        )
        print(
            f"{'t(s)':>6} {'ops':>7} {'check p99':>10} {'write p99':>10} {'invite p99':>10} {'rotate p99':>10} "
            f"{'rss a MiB':>10} {'rss b MiB':>10} errors wrong"
        )
        while time.monotonic() - start < self.seconds:
            tick += 1
            roll = rng.random()
            if roll < 0.85:
                coro = self.check(authz[tick % 2], rng)
            elif roll < 0.97:
                coro = self.write(access, rng)
            elif roll < 0.995:
                coro = self.invite(inv, members, tick)
            else:
                coro = self.rotate(sas, authz[tick % 2], key)
            task = asyncio.create_task(self._guard(coro))
            pending.add(task)
            task.add_done_callback(pending.discard)
            while len(pending) > 32:  # bounded: at most 32 calls in flight  # noqa: ASYNC110  # a cheap poll
                await asyncio.sleep(0.001)
            await asyncio.sleep(1 / self.rate)
            if time.monotonic() >= next_report:
                next_report += self.interval
                rss = [rss_kib(r.proc.pid) if r.proc else 0 for r in self.replicas]
                elapsed = time.monotonic() - start
                if baseline is None and elapsed >= self.warmup:
                    baseline = rss
                rss_series.append(rss)

                def p99(kind: str) -> str:
                    xs = self.lat.pop(kind, [])
                    return f"{statistics.quantiles(xs, n=100)[98]:.1f}ms" if len(xs) > 1 else "-"

                print(
                    f"{elapsed:6.0f} {sum(self.counts.values()):7d} {p99('check'):>10} {p99('write'):>10} "
                    f"{p99('invitation'):>10} {p99('rotation'):>10} {rss[0] / 1024:10.1f} {rss[1] / 1024:10.1f} "
                    f"{len(self.errors):6d} {self.wrong:5d}",
                    flush=True,
                )
        await asyncio.gather(*pending)
        final = [rss_kib(r.proc.pid) if r.proc else 0 for r in self.replicas]
        for c in channels:
            await c.close()
        baseline = baseline or final
        growth = [(f - b) / b * 100 if b else 0.0 for b, f in zip(baseline, final, strict=True)]
        print(
            f"\nsoak: {sum(self.counts.values())} operations {self.counts}; errors {len(self.errors)}; "
            f"wrong answers {self.wrong}"
        )
        print(
            "soak: resident memory after warm-up -> end: "
            + ", ".join(
                f"{r.name} {b / 1024:.1f} -> {f / 1024:.1f} MiB ({g:+.1f}%)"
                for r, b, f, g in zip(self.replicas, baseline, final, growth, strict=True)
            )
        )
        for e in self.errors[:10]:
            print(f"soak: error: {e}")
        for w in self.wrong_detail[:10]:
            print(f"soak: wrong: {w}")
        failed = bool(self.errors) or self.wrong > 0 or any(g > 5.0 for g in growth)
        print("soak: FAILED" if failed else "soak: OK (0 errors, 0 wrong answers, memory growth within 5%)")
        return 1 if failed else 0

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except Exception as exc:  # every failure is counted and shown
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            self.errors.append(f"{type(exc).__name__}: {detail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="how long to run (default 300)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds before the memory baseline (default 1/4)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between report lines")
    ap.add_argument("--rate", type=int, default=150, help="operations started per second (bounded)")
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else args.seconds / 4
    with pg_cluster() as pg, redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        pg.psql("CREATE DATABASE orgauthz")
        url = pg.url("orgauthz")
        db = open_store(url)
        db.migrate()
        doc = {
            "organizations": [
                {
                    "id": "acme",
                    "handle": "acme",
                    "name": "Acme",
                    "limits": {"members": 1000, "service_accounts": 10, "workspaces": 20},
                    "members": [{"user": "admin", "role": "Admin"}, *({"user": u, "role": "Member"} for u in USERS)],
                    "workspaces": [{"id": w, "handle": w} for w in WORKSPACES],
                }
            ]
        }
        import_document(db, load_policy(), doc)
        db.dispose()
        replicas: list[Replica] = []
        try:
            for name in ("a", "b"):
                for attempt in range(3):  # a free port may be taken by someone else before we bind it
                    r = Replica(name, url, redis.url, Path(tmp))
                    try:
                        r.start()
                        break
                    except RuntimeError:
                        r.stop()
                        if attempt == 2:
                            raise
                replicas.append(r)
            return asyncio.run(Soak(replicas, args.seconds, warmup, args.interval, args.rate).run())
        finally:
            for r in replicas:
                r.stop()


if __name__ == "__main__":
    sys.exit(main())
