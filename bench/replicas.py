"""Replicas benchmark (SPEC §3 and §5), from one run on a throw-away PostgreSQL and redis-server:

- gRPC ``Check`` calls/s through a replica, cache warm and cache cold, against a no-op
  ``grpc.aio`` server answering the same messages (each server in its own process,
  32 calls in flight over loopback);
- hit rates per cache tier (from the replicas' metrics endpoints);
- the costs that decide the lookup order: an async Redis ``HGET``, an engine decision for
  a loaded organization, loading an organization from PostgreSQL.

    .venv/bin/python -m bench.replicas [--seconds 4]

Prints a summary and writes ``bench/results/replicas.json``. A measurement, never a test.
Cross-replica propagation (a write on one replica until another answers it) is measured by
``make bench`` itself (``bench/run.py``, ``propagation_phase``), under the same Check load as
the same-replica figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from orgauthz.domain.policy import load_policy
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

RESULTS = Path(__file__).with_name("results") / "replicas.json"
INFLIGHT = 32
SCOPES = ["see_flows", "manage_flows", "run_deployments", "see_deployments", "manage_blocks", "see_work_pools"]
ROLES = ["Viewer", "Runner", "Developer", "Owner"]


def dataset(orgs: int = 40, workspaces: int = 8, users: int = 60, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    out = []
    for o in range(orgs):
        members = [f"o{o}u{u}" for u in range(users)]
        wss = []
        for w in range(workspaces):
            grants = rng.sample(members[1:], users // 3)
            wss.append(
                {
                    "id": f"o{o}w{w}",
                    "handle": f"w{w}",
                    "default_role": "Viewer" if w % 5 == 0 else None,
                    "access": [{"subject": f"user:{m}", "role": rng.choice(ROLES)} for m in grants],
                }
            )
        out.append(
            {
                "id": f"o{o}",
                "handle": f"o{o}",
                "name": f"Org {o}",
                "limits": {"members": users + 10, "workspaces": workspaces + 10},
                "members": [{"user": m, "role": "Admin" if i == 0 else "Member"} for i, m in enumerate(members)],
                "workspaces": wss,
            }
        )
    return {"organizations": out}


def questions(orgs: int = 40, workspaces: int = 8, users: int = 60) -> list[pb.CheckRequest]:
    """Every distinct question of the data set, shuffled (cold runs never repeat one)."""
    qs = [
        pb.CheckRequest(subject=f"user:o{o}u{u}", workspace=f"o{o}w{w}", scope=s)
        for o in range(orgs)
        for w in range(workspaces)
        for u in range(users)
        for s in SCOPES
    ]
    random.Random(2).shuffle(qs)
    return qs


# -- the no-op server --------------------------------------------------------------------------


class NoopAuthorization(pb_grpc.AuthorizationServiceServicer):  # type: ignore[misc]  # generated
    async def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        return pb.CheckResponse(allowed=True, revision=1)


async def serve_noop(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_AuthorizationServiceServicer_to_server(NoopAuthorization(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("noop serving", flush=True)
    await server.wait_for_termination()


# -- load ------------------------------------------------------------------------------------


async def rate(address: str, qs: list[pb.CheckRequest], seconds: float, *, cycle: bool) -> dict[str, float]:
    """Calls/s with INFLIGHT calls in flight; ``cycle`` repeats the questions (warm)."""
    async with grpc.aio.insecure_channel(address) as ch:
        check = pb_grpc.AuthorizationServiceStub(ch).Check
        for q in qs[:64]:
            await check(q)
        source = itertools.cycle(qs) if cycle else iter(qs[64:])
        done = errors = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                q = next(source, None)
                if q is None:
                    return
                try:
                    await check(q)
                    done += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(INFLIGHT)))
        elapsed = time.perf_counter() - start
    return {"calls_per_s": round(done / elapsed), "calls": done, "errors": errors}


async def micro_costs(db_url: str, redis_url: str, qs: list[pb.CheckRequest]) -> dict[str, float]:
    """µs per async Redis HGET, per engine decision (organization loaded), per organization load."""
    from orgauthz.cache.redis import RedisDecisionCache, RedisLink
    from orgauthz.engine.authorizer import DecisionKey
    from orgauthz.engine.engine import Engine

    link = RedisLink(redis_url)
    cache = RedisDecisionCache(link, digest="bench")
    key = DecisionKey("o0", 1, "user:x", "ws:o0w0", "see_flows")
    cache.put(key, True)
    await cache.flush()
    n = 3000
    t = time.perf_counter()
    for _ in range(n):
        await cache.get(key)
    redis_us = (time.perf_counter() - t) / n * 1e6
    await cache.close()
    await link.close()

    db = open_store(db_url)
    engine = Engine(load_policy(), db)
    await engine.start()
    t = time.perf_counter()
    for o in range(10):
        await engine.ensure_loaded(f"o{o}")
    load_ms = (time.perf_counter() - t) / 10 * 1e3
    sample = [q for q in qs if int(q.workspace[1:].split("w")[0]) < 10][:n]
    targets = [(q.subject, engine.resolve(workspace=q.workspace), q.scope) for q in sample]
    t = time.perf_counter()
    for subject, target, scope in targets:
        assert target is not None
        engine.decide(subject, target, scope)
    engine_us = (time.perf_counter() - t) / len(targets) * 1e6
    db.dispose()
    return {
        "redis_hget_us": round(redis_us, 1),
        "engine_decide_cold_us": round(engine_us, 1),
        "org_load_ms": round(load_ms, 2),
    }


def tier_counts(replica: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for tier, results in {"memory": ("hit", "miss"), "redis": ("hit", "miss", "error", "skipped")}.items():
        out[tier] = {r: replica.metric("orgauthz_cache_total", tier=tier, result=r) for r in results}
    return out


def hit_rate(counts: dict[str, float]) -> float | None:
    asked = counts.get("hit", 0) + counts.get("miss", 0) + counts.get("error", 0)
    return round(counts.get("hit", 0) / asked, 3) if asked else None


async def main(seconds: float) -> dict[str, Any]:
    from tests.replicas.harness import Replica
    from tests.support.services import free_port, pg_cluster, redis_server

    work = Path(tempfile.mkdtemp(prefix="orgauthz-bench-"))
    with pg_cluster() as cluster, redis_server() as redis:
        cluster.psql("CREATE DATABASE orgauthz")
        url = cluster.url("orgauthz")
        db = open_store(url)
        db.migrate()
        t = time.perf_counter()
        import_document(db, load_policy(), dataset())
        db.dispose()
        print(f"data set loaded in {time.perf_counter() - t:.1f} s", flush=True)
        qs = questions()

        noop_port = free_port()
        noop = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.replicas", "--noop", str(noop_port), stdout=asyncio.subprocess.PIPE
        )
        assert noop.stdout is not None
        await noop.stdout.readline()
        a = Replica("a", url, redis.url, work)
        b = Replica("b", url, redis.url, work)
        c = Replica("c", url, redis.url, work)  # fresh replica: the Redis tier answers what it has not loaded
        try:
            a.start()
            b.start()
            noop_addr = f"127.0.0.1:{noop_port}"
            warm_set = qs[:2000]
            results: dict[str, Any] = {"inflight": INFLIGHT, "seconds": seconds}
            results["noop"] = await rate(noop_addr, warm_set, seconds, cycle=True)
            await rate(b.address, warm_set, 1.0, cycle=True)  # warm b's cache
            results["warm"] = await rate(b.address, warm_set, seconds, cycle=True)
            results["cold"] = await rate(b.address, qs[2000:], seconds, cycle=False)
            results["tiers_b"] = tier_counts(b)
            c.start()
            # The same distinct questions b just answered (and queued for Redis) on a replica
            # that has loaded nothing yet.
            results["fresh_replica_cold"] = await rate(c.address, qs[2000:], seconds, cycle=False)
            results["tiers_fresh_replica"] = tier_counts(c)
            results["micro"] = await micro_costs(url, redis.url, qs)
        finally:
            for r in (a, b, c):
                r.stop()
            with contextlib.suppress(ProcessLookupError):
                noop.terminate()
            await noop.wait()
    n = results["noop"]["calls_per_s"]
    results["ratio_warm"] = round(results["warm"]["calls_per_s"] / n, 2)
    results["ratio_cold"] = round(results["cold"]["calls_per_s"] / n, 2)
    return results


def report(r: dict[str, Any]) -> str:
    m = r["micro"]
    lines = [
        f"Check calls/s, {r['inflight']} in flight, {r['seconds']} s each (client and servers share this machine)",
        f"  no-op grpc.aio server     {r['noop']['calls_per_s']:>8}",
        f"  replica, cache warm       {r['warm']['calls_per_s']:>8}   {r['ratio_warm']}x no-op",
        f"  replica, cache cold       {r['cold']['calls_per_s']:>8}   {r['ratio_cold']}x no-op",
        f"  fresh replica, cold       {r['fresh_replica_cold']['calls_per_s']:>8}   (organizations not loaded yet)",
        f"hit rates on b              memory {hit_rate(r['tiers_b']['memory'])}, "
        f"redis {hit_rate(r['tiers_b']['redis'])} "
        f"(asked {sum(v for k, v in r['tiers_b']['redis'].items() if k != 'skipped'):.0f}, "
        f"skipped {r['tiers_b']['redis']['skipped']:.0f}: organization loaded)",
        f"hit rates on fresh replica  memory {hit_rate(r['tiers_fresh_replica']['memory'])}, "
        f"redis {hit_rate(r['tiers_fresh_replica']['redis'])} "
        f"(hits {r['tiers_fresh_replica']['redis']['hit']:.0f}, "
        f"skipped {r['tiers_fresh_replica']['redis']['skipped']:.0f})",
        f"costs                       redis HGET {m['redis_hget_us']} µs, engine decision (loaded) "
        f"{m['engine_decide_cold_us']} µs, organization load {m['org_load_ms']} ms",
    ]
    return "\n".join(lines)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--noop", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.noop:
        asyncio.run(serve_noop(opts.noop))
        return 0
    results = asyncio.run(main(opts.seconds))
    results["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
