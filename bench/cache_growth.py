"""Decision-cache growth under a stream of new questions (SPEC §3), on one replica.

One ``orgauthz serve`` on SQLite (or PostgreSQL) and a throw-away redis-server. For a set
time, BatchCheck requests of 1,000 items, ``--inflight`` at once, ask either about subjects
nobody created (``--subjects fresh``, the default: every item a new subject) or every
distinct question about the organization's own members (``--subjects members``: more than
one organization revision's hash may hold). Before, every ``--every`` seconds, and after:
Redis ``used_memory`` and ``DBSIZE``, the decision hashes' fields (``HLEN``) and the
remaining ``TTL`` of the oldest one against its age, and the server's resident memory.

    .venv/bin/python -m bench.cache_growth [--seconds 60] [--store sqlite|postgres] [--subjects fresh|members]

``--set NAME=VALUE`` passes ``ORGAUTHZ_NAME=VALUE`` to the server. Prints the samples and
writes ``bench/results/cache_growth.json`` (``--out``). A measurement, never a test.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import redis as sync_redis

from orgauthz.domain.policy import load_policy
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

RESULTS = Path(__file__).with_name("results") / "cache_growth.json"
BATCH = 1000
ORG = "acme"
MEMBERS = [f"m{i}" for i in range(2000)]
WORKSPACES = [f"w{i}" for i in range(10)]
ROLES = ["Viewer", "Runner", "Developer", "Owner"]
KEYS = "orgauthz:d:*"


def dataset(seed: int = 1) -> dict[str, Any]:
    """One organization: 2,000 members, 10 workspaces with 200 grants each."""
    rng = random.Random(seed)
    workspaces = [
        {
            "id": w,
            "handle": w,
            "default_role": "Viewer" if i == 0 else None,
            "access": [{"subject": f"user:{m}", "role": rng.choice(ROLES)} for m in rng.sample(MEMBERS, 200)],
        }
        for i, w in enumerate(WORKSPACES)
    ]
    members = [{"user": m, "role": "Admin" if i == 0 else "Member"} for i, m in enumerate(MEMBERS)]
    org = {
        "id": ORG,
        "handle": ORG,
        "name": "Acme",
        "limits": {"members": len(MEMBERS) + 10, "workspaces": len(WORKSPACES) + 10},
        "members": members,
        "workspaces": workspaces,
    }
    return {"organizations": [org]}


def fresh_questions() -> Iterator[pb.CheckRequest]:
    """A new subject in every question, over every workspace and a few scopes."""
    scopes = ["see_flows", "run_deployments", "manage_blocks", "see_work_pools"]
    for n in itertools.count():
        yield pb.CheckRequest(subject=f"user:fresh{n}", workspace=WORKSPACES[n % 10], scope=scopes[n % 4])


def member_questions() -> Iterator[pb.CheckRequest]:
    """Every (member, workspace, workspace scope), shuffled, then again."""
    scopes = sorted(load_policy().workspace_scopes)
    rng = random.Random(2)
    subjects = [f"user:{m}" for m in MEMBERS]
    while True:
        rng.shuffle(subjects)
        for scope, ws, subject in itertools.product(scopes, WORKSPACES, subjects):
            yield pb.CheckRequest(subject=subject, workspace=ws, scope=scope)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Probe:
    """Reads Redis and the server's memory; remembers when each decision hash was first seen."""

    def __init__(self, redis_url: str, pid: int) -> None:
        self.r = sync_redis.Redis.from_url(redis_url)
        self.pid = pid
        self.first_seen: dict[bytes, float] = {}
        self.t0 = time.monotonic()

    def sample(self, decisions: int) -> dict[str, Any]:
        now = time.monotonic()
        keys = list(self.r.scan_iter(match=KEYS, count=1000))
        lens = [int(self.r.hlen(k)) for k in keys]
        oldest: tuple[float, int] | None = None
        for k in keys:
            seen = self.first_seen.setdefault(k, now)
            if oldest is None or now - seen > oldest[0]:
                oldest = (now - seen, int(self.r.ttl(k)))
        return {
            "t_s": round(now - self.t0, 1),
            "decisions": decisions,
            "server_rss_mib": rss_mib(self.pid),
            "redis_used_memory_mib": round(int(self.r.info("memory")["used_memory"]) / 2**20, 1),
            "dbsize": int(self.r.dbsize()),
            "hashes": len(keys),
            "fields": sum(lens),
            "max_hlen": max(lens, default=0),
            "oldest_hash_age_s": round(oldest[0], 1) if oldest else None,
            "oldest_hash_ttl_s": oldest[1] if oldest else None,
        }

    def close(self) -> None:
        self.r.close()


async def load(
    address: str,
    source: Iterator[pb.CheckRequest],
    seconds: float,
    inflight: int,
    probe: Probe,
    every: float,
    samples: list[dict[str, Any]],
) -> int:
    """BatchCheck(1,000) from ``source`` until the time is up; returns the decisions answered."""
    done = 0
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as ch:
        batch = pb_grpc.AuthorizationServiceStub(ch).BatchCheck

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                request = pb.BatchCheckRequest(items=list(itertools.islice(source, BATCH)))
                response = await batch(request, timeout=30)
                done += len(response.results)

        async def sampler() -> None:
            while time.monotonic() < deadline:
                await asyncio.sleep(min(every, max(0.0, deadline - time.monotonic())))
                samples.append(await asyncio.to_thread(probe.sample, done))
                print(_line(samples[-1]), flush=True)

        await asyncio.gather(sampler(), *(worker() for _ in range(inflight)))
    return done


def _line(s: dict[str, Any]) -> str:
    return (
        f"t={s['t_s']:>6} s  decisions {s['decisions']:>10,}  server RSS {s['server_rss_mib']:>7} MiB  "
        f"redis used_memory {s['redis_used_memory_mib']:>7} MiB  DBSIZE {s['dbsize']:>4}  "
        f"fields {s['fields']:>10,}  max HLEN {s['max_hlen']:>10,}  "
        f"oldest hash: age {s['oldest_hash_age_s']} s, TTL {s['oldest_hash_ttl_s']} s"
    )


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    from tests.replicas.harness import Replica
    from tests.support.services import pg_cluster, redis_server

    work = Path(tempfile.mkdtemp(prefix="orgauthz-cache-growth-"))
    env = {f"ORGAUTHZ_{k.upper()}": v for k, _, v in (s.partition("=") for s in opts.set)}
    with contextlib.ExitStack() as stack:
        if opts.store == "postgres":
            cluster = stack.enter_context(pg_cluster())
            cluster.psql("CREATE DATABASE orgauthz")
            url = cluster.url("orgauthz")
        else:
            url = f"sqlite:///{work / 'orgauthz.db'}"
        db = open_store(url)
        db.migrate()
        import_document(db, load_policy(), dataset())
        db.dispose()
        redis = stack.enter_context(redis_server())
        replica = Replica("server", url, redis.url, work, env=env)
        replica.start()
        stack.callback(replica.stop)
        assert replica.proc is not None
        probe = Probe(redis.url, replica.proc.pid)
        stack.callback(probe.close)
        # The organization loaded and one hash written before the first sample.
        async with grpc.aio.insecure_channel(replica.address) as ch:
            warm = [pb.CheckRequest(subject=f"user:{m}", workspace="w0", scope="see_flows") for m in MEMBERS[:BATCH]]
            await pb_grpc.AuthorizationServiceStub(ch).BatchCheck(pb.BatchCheckRequest(items=warm))
        await asyncio.sleep(0.5)
        before = probe.sample(0)
        print(_line(before), flush=True)
        samples: list[dict[str, Any]] = []
        source = fresh_questions() if opts.subjects == "fresh" else member_questions()
        start = time.monotonic()
        decisions = await load(replica.address, source, opts.seconds, opts.inflight, probe, opts.every, samples)
        elapsed = time.monotonic() - start
        await asyncio.sleep(1.0)  # the server's last queued writes reach Redis
        after = probe.sample(decisions)
        print(_line(after), flush=True)
    return {
        "store": opts.store,
        "subjects": opts.subjects,
        "seconds": opts.seconds,
        "batch": BATCH,
        "inflight": opts.inflight,
        "server_env": env,
        "decisions": decisions,
        "decisions_per_s": round(decisions / elapsed),
        "before": before,
        "after": after,
        "samples": samples,
    }


def report(r: dict[str, Any]) -> str:
    b, a = r["before"], r["after"]
    return "\n".join(
        [
            f"BatchCheck({r['batch']}), {r['inflight']} in flight, {r['subjects']} subjects, {r['seconds']} s on "
            f"{r['store']}: {r['decisions']:,} decisions ({r['decisions_per_s']:,}/s)",
            f"  server RSS          {b['server_rss_mib']} -> {a['server_rss_mib']} MiB",
            f"  redis used_memory   {b['redis_used_memory_mib']} -> {a['redis_used_memory_mib']} MiB",
            f"  DBSIZE              {b['dbsize']} -> {a['dbsize']}",
            f"  fields (all hashes) {b['fields']:,} -> {a['fields']:,} (largest hash {a['max_hlen']:,})",
            f"  oldest hash         age {a['oldest_hash_age_s']} s, TTL left {a['oldest_hash_ttl_s']} s",
        ]
    )


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--inflight", type=int, default=4, help="BatchCheck calls in flight")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--subjects", choices=["fresh", "members"], default="fresh")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--out", type=Path, default=RESULTS)
    opts = parser.parse_args()
    results = asyncio.run(main(opts))
    results["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
