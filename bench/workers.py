"""Worker processes (SPEC §5, issue: every core): Check through ``orgauthz serve --workers N``
for N = 1 and N = 2 (and the machine's core count when it has more), side by side in one run.

Each server is the real command on the bench's database. The load generator
(:mod:`bench.client`) opens 16 channels, each its own connection, so the kernel spreads them
over the workers. Where the machine has more cores than N, the server is pinned to N cores
and the load generator to the others; where it has not (N = 2 on a 2-core machine), the
rate is bounded by the cores the client takes too, and the figure that says whether N
workers scale is the **server CPU per decision** (all of the server's processes): N workers
on N cores answer N / (CPU per decision) calls a second, so the SPEC's 0.8*N is CPU per
decision at most 1.25 times one process's.

It also measures a write's visibility with N workers under the write phase's Check load:
the write (grant or revoke) through one connection, then a Check without ``min_revision``
through another, until it shows the write (``first_check_stale`` counts the times the first
Check did not: SPEC §3 says it never does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from bench.client import percentiles
from bench.servers import TOKEN, stop
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpb_grpc

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = 16
LISTENING = re.compile(rb"orgauthz listening on \S+:(\d+) \(gRPC")


def counts(cores: int) -> list[int]:
    """The worker counts measured: 1, 2 and the machine's cores."""
    return sorted({1, 2, cores})


def pinning(n: int, cores: int) -> tuple[set[int] | None, set[int] | None]:
    """(server cores, client cores): the server on N cores and the client on the rest, when
    there are any; otherwise neither is pinned."""
    if cores > n:
        return set(range(n)), set(range(n, cores))
    return None, None


@contextlib.contextmanager
def workers_server(database_url: str, n: int, cpus: set[int] | None, py: str) -> Iterator[tuple[int, list[int]]]:
    """``orgauthz serve --workers n``; yields its port and its processes (supervisor, workers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGAUTHZ_")}
    env.update(ORGAUTHZ_LOG_LEVEL="WARNING", ORGAUTHZ_MIGRATE="false")
    cmd = [py, "-m", "orgauthz.cli", "serve", "--workers", str(n), "--listen", "127.0.0.1:0"]
    cmd += ["--metrics-listen", "", "--database-url", database_url, "--auth-token", TOKEN]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,  # no threads yet
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = LISTENING.search(line)
        if not found:
            raise RuntimeError(f"serve --workers {n} did not start: {line!r}")
        yield int(found.group(1)), [proc.pid, *children(proc.pid)]
    finally:
        stop(proc, 30)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def visibility(port: int, writes: list[list[str]]) -> dict[str, Any]:
    """Grant/revoke pairs through one connection, each then checked through another (no
    ``min_revision``) until it shows: latency from the write call to that answer."""
    chans = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    token = [("authorization", f"Bearer {TOKEN}")]
    lat: list[float] = []
    stale = errors = 0
    try:
        for ch in chans:
            await asyncio.wait_for(ch.channel_ready(), 30)
        for i, (actor, ws, subject, role, scope) in enumerate(writes):
            access = mpb_grpc.AccessServiceStub(chans[i % CHANNELS])
            meta = [*token, ("x-orgauthz-actor", actor)]
            for grant in (True, False):
                check = pb_grpc.AuthorizationServiceStub(chans[(i + 1 + grant) % CHANNELS]).Check
                try:
                    t0 = time.perf_counter()
                    if grant:
                        req: Any = mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role)
                        await access.GrantWorkspaceAccess(req, metadata=meta)
                    else:
                        req = mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject)
                        await access.RevokeWorkspaceAccess(req, metadata=meta)
                    first = True
                    while True:
                        r = await check(pb.CheckRequest(subject=subject, workspace=ws, scope=scope), metadata=token)
                        if r.allowed == grant:
                            break
                        stale += first
                        first = False
                        if time.perf_counter() - t0 > 2:
                            break
                    lat.append(time.perf_counter() - t0)
                except grpc.RpcError:
                    errors += 1
    finally:
        for ch in chans:
            await ch.close()
    return {"writes": len(lat), "errors": errors, "first_check_stale": stale, "visible": percentiles(lat)}


def write_visibility(port: int, writes: list[list[str]]) -> dict[str, Any]:
    return asyncio.run(visibility(port, writes))


def phase(url: str, warm: list[Any], writes: list[list[str]], rate: int, quick: bool, py: str) -> dict[str, Any]:
    """Every worker count's server, started at once and measured in turns (rounds, the median
    kept): Check closed loop (32 in flight over 16 connections), the server's CPU per call over
    all its processes; then a write's visibility under a Check load of ``rate``."""
    from bench import run as R  # the bench's process helpers (run.py imports this module)

    cores = len(os.sched_getaffinity(0))
    dur = 4.0 if quick else 8.0
    rounds = 2 if quick else 3
    out: dict[str, Any] = {"cores": cores, "channels": CHANNELS, "by_workers": {}}
    with contextlib.ExitStack() as stack:
        servers = {}
        for n in counts(cores):
            server_cpus, client_cpus = pinning(n, cores)
            port, pids = stack.enter_context(workers_server(url, n, server_cpus, py))
            servers[n] = (port, pids, client_cpus)
            R.say(f"serve --workers {n}: port {port}, processes {pids}, server cores {sorted(server_cpus or [])}")
            for _ in range(2):  # every worker sees (and caches) most of the warm set
                R.client(port, "check", requests=warm, concurrency=32, duration=dur / 2, channels=CHANNELS)
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in servers}
        for i in range(rounds):
            for n, (port, pids, client_cpus) in servers.items():
                cpu0 = sum(R.cpu_s(p) for p in pids)
                res = R.client(
                    port,
                    "check",
                    requests=warm,
                    concurrency=32,
                    duration=dur,
                    channels=CHANNELS,
                    cpus=sorted(client_cpus) if client_cpus else None,
                )
                used = sum(R.cpu_s(p) for p in pids) - cpu0
                res["server_cpu_us_per_call"] = round(used / res["calls"] * 1e6, 1)
                res["server_cpu_busy"] = round(used / res["seconds"], 2)
                runs[n].append(res)
            R.say(
                f"  workers round {i + 1}/{rounds}: "
                + ", ".join(
                    f"{n}: {v[-1]['rate']:.0f}/s, {v[-1]['server_cpu_us_per_call']} us CPU/call, "
                    f"{v[-1]['server_cpu_busy']} cores busy"
                    for n, v in runs.items()
                )
            )
        one = R.combine(runs[1])
        for n, rs in runs.items():
            c = R.combine(rs)
            out["by_workers"][str(n)] = {
                "rate": c["rate"],
                "server_cpu_us_per_call": c["server_cpu_us_per_call"],
                "server_cpu_busy": c["server_cpu_busy"],
                "p99_ms": c["p99_ms"],
                "pinned": servers[n][2] is not None,
                "rate_vs_one": round(c["rate"] / one["rate"], 3),
                # N workers on N cores: N / (CPU per call); against one process on one core.
                "cpu_scaling": round(n * one["server_cpu_us_per_call"] / c["server_cpu_us_per_call"], 3),
                "rounds": [{k: r[k] for k in ("rate", "server_cpu_us_per_call", "server_cpu_busy")} for r in rs],
            }
        n = max(servers)
        port = servers[n][0]
        R.say(f"write visibility with {n} workers: {len(writes)} pairs under a Check load of {rate}/s")
        load = R.client_background(port, "check", nice=10, requests=warm, rate=rate, duration=600, channels=CHANNELS)
        try:
            time.sleep(1.0)  # time for the load client to start sending
            out["write_visible"] = {"workers": n, **write_visibility(port, writes)}
        finally:
            load.terminate()
            assert load.stdout is not None
            delivered = load.stdout.read()
            load.wait()
        out["write_visible"]["check_load"] = {"target_rate": rate, **json.loads(delivered or "{}")}
        w = out["write_visible"]
        R.say(
            f"  visible through another connection: p50 {w['visible'].get('p50_ms')} ms, "
            f"p99 {w['visible'].get('p99_ms')} ms; first Check stale: {w['first_check_stale']}, errors {w['errors']}"
        )
    return out
