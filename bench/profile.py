"""Profiles the server (or the no-op server) under one client workload with py-spy.

    python -m bench.profile warm|cold|batch|write|warm_obj|batch_obj|plan [--noop] [--seconds 6]

``warm_obj`` and ``batch_obj`` name objects (R26), ``plan`` is PlanObjects with one call in
flight, each over the requests ``bench.run`` draws.

Prints the functions with the most samples (self and inclusive) and writes the collapsed
stacks to ``bench/.data/profile-<workload>.txt`` (flamegraph input).
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import tempfile
import time
from pathlib import Path

from bench import generate
from bench.run import (
    DATA,
    client_background,
    ensure_dataset,
    object_requests_for,
    plan_requests_for,
    requests_for,
    server,
    write_plan,
)
from orgauthz.domain.policy import load_policy
from orgauthz.store import snapshots
from orgauthz.store.db import open_store

PYSPY = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy")


def summarize(collapsed: Path, top: int = 25) -> str:
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        k = int(n)
        total += k
        self_c[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    out = [f"{total} samples", "-- self --"]
    out += [f"{v / total:6.1%}  {f}" for f, v in self_c.most_common(top)]
    out += ["-- inclusive --"]
    out += [f"{v / total:6.1%}  {f}" for f, v in incl.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["warm", "cold", "batch", "write", "warm_obj", "batch_obj", "plan"])
    ap.add_argument("--noop", action="store_true")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--dataset", default="small")
    ap.add_argument("--url", default="", help="database URL holding --dataset (default: its SQLite file)")
    ap.add_argument("--load-rate", type=float, default=0.0, help="write: concurrent Check load (calls/s)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra bench.servers argument")
    opts = ap.parse_args()
    policy = load_policy()
    p = generate.plan(generate.shape_named(opts.dataset))
    DATA.mkdir(parents=True, exist_ok=True)
    url = opts.url or f"sqlite:///{DATA / (opts.dataset + '.db')}"
    if not opts.url:
        ensure_dataset(url, p, policy, DATA / f"{opts.dataset}.sqlite.loaded")
    db = open_store(url)
    orgs = [f"o{i:04d}" for i in range(min(p.shape.orgs, 20))]
    snaps = {o: snapshots.load_org(db, o)[0] for o in orgs}  # type: ignore[index]
    db.dispose()
    rng = random.Random(1)
    reqs = [list(r) for o in orgs for r in requests_for(snaps[o], policy, rng, 2000, ["user:nobody"])]
    warm = reqs[:2000]
    orng = random.Random(6)
    with_objects = [list(r) for o in orgs for r in object_requests_for(snaps[o], policy, orng, 400, ["user:nobody"])]
    orng.shuffle(with_objects)
    warm_obj = with_objects[:2000]
    plans, _ = plan_requests_for(list(snaps.values()), policy, orng, 3000, ["user:nobody"])
    args = ("noop",) if opts.noop else ("app", "--database-url", url, *opts.server_arg)
    out = DATA / f"profile-{opts.workload}{'-noop' if opts.noop else ''}.txt"
    with server(*args) as (proc, port, _):
        if not opts.noop:
            from bench.run import client

            client(port, "once", requests=[reqs[i * 2000] for i in range(len(orgs))], concurrency=1)
            client(port, "once", requests=warm, concurrency=32)
            client(port, "once", requests=warm_obj, concurrency=32)
        if opts.workload == "warm":
            load = client_background(port, "check", requests=warm, concurrency=32, duration=opts.seconds + 2)
        elif opts.workload == "cold":
            load = client_background(port, "once", requests=reqs[2000:], concurrency=32)
        elif opts.workload == "batch":
            load = client_background(port, "batch", requests=warm, batch=100, concurrency=8, duration=opts.seconds + 2)
        elif opts.workload == "warm_obj":
            load = client_background(port, "check", requests=warm_obj, concurrency=32, duration=opts.seconds + 2)
        elif opts.workload == "batch_obj":
            load = client_background(
                port, "batch", requests=warm_obj, batch=100, concurrency=8, duration=opts.seconds + 2
            )
        elif opts.workload == "plan":
            load = client_background(port, "plan", requests=plans, concurrency=1, duration=opts.seconds + 2)
        else:
            if opts.load_rate:
                client_background(port, "check", requests=warm, rate=opts.load_rate, duration=opts.seconds + 6)
            load = client_background(port, "write", writes=write_plan(list(snaps.values()), 300))
        time.sleep(1.0)
        with tempfile.TemporaryDirectory():
            subprocess.run(
                [
                    PYSPY,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--duration",
                    str(int(opts.seconds)),
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--rate",
                    "250",
                    "--nonblocking",
                ],
                check=True,
                capture_output=True,
            )
        assert load.stdout is not None
        print(load.stdout.read()[:600])
        load.wait()
    print(summarize(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
