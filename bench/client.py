"""The load generator: one process, ``grpc.aio``, N calls in flight; the same client for every server.

Reads a JSON job on stdin, prints a JSON result on stdout. Modes:

- ``check``: Check requests cycled from ``requests`` (``[subject, workspace, scope]``, or
  ``[subject, workspace, scope, object]`` naming an object), closed
  loop with ``concurrency`` calls in flight for ``duration`` seconds; or open loop at ``rate``
  calls/s (latency percentiles at a fixed load); with ``more_targets``, the calls go to
  ``target`` and those servers in turn (one load spread over several replicas);
- ``batch``: BatchCheck of ``batch`` items taken in turn from ``requests``;
- ``once``: each request once, in order, ``concurrency`` in flight (cold-cache passes, warm-up);
- ``write``: grant then revoke through ``AccessService`` (``writes``: ``[actor, workspace,
  subject, role, scope]``); after each write, a Check with ``min_revision`` on the same server
  must show it. Latency is from the write call to the answer showing it;
- ``propagate``: the same grant/revoke pairs on ``target`` (replica A); after each, replica B
  (``other``) is asked the same Check, without ``min_revision``, every 0.5 ms until its answer
  flips (the natural propagation: pub/sub nudge, change feed, cache). Latency is from the
  write call on A (and, separately, from its answer) to B's first answer showing it; a write
  B does not show within ``bound_s`` (2 s) is counted not visible;
- ``plan``: PlanObjects requests (``[subject, workspace, kind, scope]``) cycled, closed loop as
  ``check``; ``plan_answers``: each once, in order, counting the answers' kinds and ids;
- ``mint_keys``: a personal API key for each of ``users`` (R29), each asserting its user;
  returns the keys;
- ``authenticate``: Authenticate with ``keys`` cycled, closed loop as ``check`` (R14);
- ``pairs``: ``pairs`` times, two Checks one after the other (the first standing in for a
  write, the second for the Check that shows it), timed from the first call to the second
  answer: against the no-op server under the same load, the floor the transport sets for
  ``write``.

Every mode but ``write``, ``propagate`` and ``mint_keys`` takes ``channels`` (default 1):
that many connections to each target, the calls going round them, so a server's worker
processes each get some (the kernel spreads connections, not calls).

The client turns its own cyclic garbage collector off while it measures (as ``timeit``
does): a collection in the client pauses its event loop, and that pause would be counted
as the server's latency (a gc callback in the write phase's clients saw 1-2 ms gen-1 and
15 ms gen-2 collections). A job is short; what it would collect waits for the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import signal
import sys
import time
from typing import Any

import grpc

from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpb_grpc


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/p999 in milliseconds."""
    if not samples:
        return {}
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return {
        "p50_ms": round(pick(0.5), 3),
        "p90_ms": round(pick(0.9), 3),
        "p99_ms": round(pick(0.99), 3),
        "p999_ms": round(pick(0.999), 3),
        "max_ms": round(s[-1] * 1000, 3),
        "n": len(s),
    }


def _req(r: list[str]) -> pb.CheckRequest:
    if len(r) > 3:  # naming an object (R26)
        return pb.CheckRequest(subject=r[0], workspace=r[1], scope=r[2], object=r[3])
    return pb.CheckRequest(subject=r[0], workspace=r[1], scope=r[2])


def _plan(r: list[str]) -> pb.PlanObjectsRequest:
    return pb.PlanObjectsRequest(subject=r[0], workspace=r[1], kind=r[2], scope=r[3])


async def plan_answers(call: Any, msgs: list[Any], meta: Any) -> dict[str, Any]:
    """Each PlanObjects request once, in order: how many answers of each kind, and their ids."""
    kinds: dict[str, int] = {}
    ids: list[int] = []
    for msg in msgs:
        r = await call(msg, metadata=meta)
        kind = pb.PlanObjectsResponse.Kind.Name(r.kind)
        kinds[kind] = kinds.get(kind, 0) + 1
        ids.append(len(r.ids))
    return {
        "calls": len(msgs),
        "kinds": kinds,
        "mean_ids": round(sum(ids) / len(ids), 1) if ids else 0,
        "max_ids": max(ids, default=0),
    }


async def closed_loop(call: Any, msgs: list[Any], concurrency: int, duration: float, meta: Any) -> dict[str, Any]:
    it = itertools.cycle(msgs)
    count = errors = 0
    lat: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal count, errors
        while time.perf_counter() < deadline:
            msg = next(it)
            t = time.perf_counter()
            try:
                await call(msg, metadata=meta)
            except grpc.RpcError:
                errors += 1
            lat.append(time.perf_counter() - t)
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    el = time.perf_counter() - t0
    return {"calls": count, "errors": errors, "seconds": round(el, 3), "rate": round(count / el, 1), **percentiles(lat)}


STOP = [False]  # set by SIGTERM: an open-loop load stops sending and reports what it sent


async def open_loop(
    call: Any, msgs: list[Any], rate: float, duration: float, meta: Any, max_in_flight: int = 256
) -> dict[str, Any]:
    """Sends at a fixed rate; latency counts from the scheduled send time. SIGTERM ends it
    early (a background load stopped when the measurement under it ends)."""
    it = itertools.cycle(msgs)
    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(msg: Any, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(msg, metadata=meta)
        except grpc.RpcError:
            errors += 1
        finally:
            sem.release()
        lat.append(time.perf_counter() - scheduled)

    t0 = time.perf_counter()
    n = int(rate * duration)
    for i in range(n):
        if STOP[0]:
            n = i
            break
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        task = asyncio.create_task(one(next(it), scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    el = time.perf_counter() - t0
    return {
        "calls": n,
        "errors": errors,
        "seconds": round(el, 3),
        "rate": round(n / el, 1),
        "target_rate": rate,
        **percentiles(lat),
    }


async def once(call: Any, msgs: list[Any], concurrency: int, meta: Any) -> dict[str, Any]:
    queue = iter(msgs)
    lat: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for msg in queue:
            t = time.perf_counter()
            try:
                await call(msg, metadata=meta)
            except grpc.RpcError:
                errors += 1
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    el = time.perf_counter() - t0
    return {
        "calls": len(lat),
        "errors": errors,
        "seconds": round(el, 3),
        "rate": round(len(lat) / el, 1),
        **percentiles(lat),
    }


async def _write(access: Any, meta: Any, grant: bool, ws: str, subject: str, role: str) -> int:
    """A grant (or revoke) through AccessService; its committed revision."""
    if grant:
        g = await access.GrantWorkspaceAccess(
            mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role), metadata=meta
        )
        return int(g.revision)
    rv = await access.RevokeWorkspaceAccess(
        mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject), metadata=meta
    )
    return int(rv.revision)


async def writes(channel: grpc.aio.Channel, job: dict[str, Any], token_meta: list[tuple[str, str]]) -> dict[str, Any]:
    access = mpb_grpc.AccessServiceStub(channel)
    authz = pb_grpc.AuthorizationServiceStub(channel)
    grant_lat: list[float] = []
    revoke_lat: list[float] = []
    commit_lat: list[float] = []
    check_lat: list[float] = []  # the Check with min_revision alone, after the write returned
    invisible = errors = 0

    async def visible(subject: str, ws: str, scope: str, rev: int, expect: bool, t0: float, out: list[float]) -> None:
        nonlocal invisible
        t1 = time.perf_counter()
        r = await authz.Check(
            pb.CheckRequest(subject=subject, workspace=ws, scope=scope, min_revision=rev), metadata=token_meta
        )
        t2 = time.perf_counter()
        out.append(t2 - t0)
        check_lat.append(t2 - t1)
        if r.allowed != expect:
            invisible += 1

    for actor, ws, subject, role, scope in job["writes"]:
        meta = [*token_meta, ("x-orgauthz-actor", actor)]
        try:
            for grant, out in ((True, grant_lat), (False, revoke_lat)):
                t0 = time.perf_counter()
                rev = await _write(access, meta, grant, ws, subject, role)
                commit_lat.append(time.perf_counter() - t0)
                await visible(subject, ws, scope, rev, grant, t0, out)
        except grpc.RpcError as exc:
            errors += 1
            if errors <= 3:
                print(f"write error: {exc.code().name}: {exc.details()}", file=sys.stderr)
    both = grant_lat + revoke_lat
    return {
        "writes": len(both),
        "errors": errors,
        "not_visible": invisible,
        "visible": percentiles(both),
        "grant": percentiles(grant_lat),
        "revoke": percentiles(revoke_lat),
        "commit": percentiles(commit_lat),
        "check_after": percentiles(check_lat),
    }


async def propagate(
    channel_a: grpc.aio.Channel, channel_b: grpc.aio.Channel, job: dict[str, Any], token_meta: list[tuple[str, str]]
) -> dict[str, Any]:
    access = mpb_grpc.AccessServiceStub(channel_a)
    check_b = pb_grpc.AuthorizationServiceStub(channel_b).Check
    bound = float(job.get("bound_s", 2.0))
    from_write: list[float] = []
    from_commit: list[float] = []
    commit_lat: list[float] = []
    polls: list[int] = []
    not_visible = errors = 0

    async def until(req: pb.CheckRequest, expect: bool, limit: float) -> tuple[float, int] | None:
        """Asks B until it answers ``expect``: when it did and after how many calls; None past ``limit``."""
        n = 0
        while True:
            r = await check_b(req, metadata=token_meta)
            n += 1
            now = time.perf_counter()
            if r.allowed == expect:
                return now, n
            if now >= limit:
                return None
            await asyncio.sleep(0.0005)

    for actor, ws, subject, role, scope in job["writes"]:
        meta = [*token_meta, ("x-orgauthz-actor", actor)]
        req = pb.CheckRequest(subject=subject, workspace=ws, scope=scope)
        try:
            # B shows the state before the grant (not timed: loads the organization, or waits
            # out a write counted not visible before).
            await until(req, False, time.perf_counter() + 10)
            for grant in (True, False):
                t0 = time.perf_counter()
                await _write(access, meta, grant, ws, subject, role)
                t1 = time.perf_counter()
                commit_lat.append(t1 - t0)
                seen = await until(req, grant, t1 + bound)
                if seen is None:
                    not_visible += 1
                    continue
                from_write.append(seen[0] - t0)
                from_commit.append(seen[0] - t1)
                polls.append(seen[1])
        except grpc.RpcError as exc:
            errors += 1
            if errors <= 3:
                print(f"propagate error: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return {
        "writes": len(commit_lat),
        "errors": errors,
        "not_visible": not_visible,
        "bound_s": bound,
        "visible": percentiles(from_write),
        "after_commit": percentiles(from_commit),
        "commit": percentiles(commit_lat),
        "mean_polls": round(sum(polls) / len(polls), 2) if polls else None,
    }


async def pairs(call: Any, msgs: list[Any], n: int, meta: Any) -> dict[str, Any]:
    first: list[float] = []
    both: list[float] = []
    errors = 0
    it = itertools.cycle(msgs)
    for _ in range(n):
        try:
            t0 = time.perf_counter()
            await call(next(it), metadata=meta)
            first.append(time.perf_counter() - t0)
            await call(next(it), metadata=meta)
            both.append(time.perf_counter() - t0)
        except grpc.RpcError:
            errors += 1
    return {"pairs": len(both), "errors": errors, "pair": percentiles(both), "first": percentiles(first)}


async def mint_keys(channel: grpc.aio.Channel, users: list[str], meta: list[tuple[str, str]]) -> dict[str, Any]:
    from orgauthz.v1 import user_api_keys_pb2 as upb
    from orgauthz.v1 import user_api_keys_pb2_grpc as upb_grpc

    stub = upb_grpc.UserApiKeyServiceStub(channel)
    keys = []
    for user in users:
        r = await stub.CreateUserApiKey(
            upb.CreateUserApiKeyRequest(user_id=user, name="bench"),
            metadata=[*meta, ("x-orgauthz-actor", f"user:{user}")],
        )
        keys.append(r.api_key)
    return {"keys": keys}


class Spread:
    """``AuthorizationService``'s methods over several channels, each call on the next one."""

    def __init__(self, channels: list[grpc.aio.Channel]) -> None:
        self._stubs = [pb_grpc.AuthorizationServiceStub(ch) for ch in channels]
        self._turn = itertools.count()

    def __getattr__(self, name: str) -> Any:
        methods = [getattr(stub, name) for stub in self._stubs]
        return lambda *args, **kwargs: methods[next(self._turn) % len(methods)](*args, **kwargs)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def connect(target: str, own: bool) -> grpc.aio.Channel:
            # ``own``: a connection of its own (channels to one target share one otherwise).
            options = [("grpc.use_local_subchannel_pool", 1)] if own else []
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(target, options=options))
            await asyncio.wait_for(channel.channel_ready(), 30)
            return channel

        channels = [
            await connect(target, i > 0)
            for target in [job["target"], *job.get("more_targets", [])]
            for i in range(job.get("channels", 1))
        ]
        other = await connect(job["other"], False) if "other" in job else None
        return await _run(job, channels, other)


async def _run(job: dict[str, Any], channels: list[grpc.aio.Channel], other: grpc.aio.Channel | None) -> dict[str, Any]:
    meta = [("authorization", f"Bearer {job['token']}")] if job.get("token") else []
    channel = channels[0]
    if job["mode"] == "write":
        return await writes(channel, job, meta)
    if job["mode"] == "propagate":
        assert other is not None
        return await propagate(channel, other, job, meta)
    if job["mode"] == "mint_keys":
        return await mint_keys(channel, job["users"], meta)
    # Several targets or ``channels``: the calls go round the connections, in turn.
    stub: Any = Spread(channels) if len(channels) > 1 else pb_grpc.AuthorizationServiceStub(channel)
    if job["mode"] == "authenticate":
        msgs = [pb.AuthenticateRequest(api_key=k) for k in job["keys"]]
        if job.get("once"):
            return await once(stub.Authenticate, msgs, job["concurrency"], meta)
        return await closed_loop(stub.Authenticate, msgs, job["concurrency"], job["duration"], meta)
    if job["mode"] in ("plan", "plan_answers"):
        msgs = [_plan(r) for r in job["requests"]]
        if job["mode"] == "plan_answers":
            return await plan_answers(stub.PlanObjects, msgs, meta)
        return await closed_loop(stub.PlanObjects, msgs, job["concurrency"], job["duration"], meta)
    if job["mode"] == "batch":
        reqs = [_req(r) for r in job["requests"]]
        size = job["batch"]
        msgs = [pb.BatchCheckRequest(items=reqs[i : i + size]) for i in range(0, len(reqs) - size + 1, size)]
        out = await closed_loop(stub.BatchCheck, msgs, job["concurrency"], job["duration"], meta)
        out["decisions_per_s"] = round(out["rate"] * size, 1)
        return out
    msgs = [_req(r) for r in job["requests"]]
    if job["mode"] == "once":
        return await once(stub.Check, msgs, job["concurrency"], meta)
    if job["mode"] == "pairs":
        return await pairs(stub.Check, msgs, job["pairs"], meta)
    if job.get("rate"):
        return await open_loop(stub.Check, msgs, job["rate"], job["duration"], meta)
    return await closed_loop(stub.Check, msgs, job["concurrency"], job["duration"], meta)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: STOP.__setitem__(0, True))
    job = json.load(sys.stdin)
    if job.get("cpus"):  # the cores left to the load generator (bench/workers.py)
        os.sched_setaffinity(0, job["cpus"])
    gc.collect()
    gc.freeze()
    gc.disable()
    print(json.dumps(asyncio.run(run(job))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
