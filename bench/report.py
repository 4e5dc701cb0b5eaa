"""Turns a ``bench/results/*.json`` into the SPEC §5 table, the plots and ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTES = Path(__file__).with_name("NOTES.md")  # profiles' conclusions, kept by hand


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, measured, target, met?)"""

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("yes" if ok else "**no**")

    ra = r["ratios"]
    e = r["engine_vs_casbin"]
    s = r["server"]
    out = [
        (
            "engine vs plain casbin.Enforcer (decisions/s)",
            f"{ra['engine_vs_casbin']}x ({e['mismatches']} mismatches / {e['requests']})",
            ">= 10x, 0 mismatches",
            met(ra["engine_vs_casbin"] >= 10 and e["mismatches"] == 0),
        ),
        (
            "gRPC Check, cache warm, vs no-op server",
            f"{ra['check_warm_vs_noop']}x (all rounds: {s['check_warm']['rate']:.0f} vs {r['noop']['rate']:.0f}/s)",
            ">= 0.8x",
            met(ra["check_warm_vs_noop"] >= 0.8),
        ),
        *_object_check_rows(r, met),
        (
            "gRPC Check, cache cold, vs no-op server",
            f"{ra['check_cold_vs_noop']}x ({s['check_cold']['rate']:.0f}/s)",
            ">= 0.5x",
            met(ra["check_cold_vs_noop"] >= 0.5),
        ),
        (
            "server CPU per Check, no-op / full server, cache warm (server-side view)",
            f"{ra.get('server_cpu_warm_vs_noop')}x ({r['noop'].get('server_cpu_us_per_call')} vs "
            f"{s['check_warm'].get('server_cpu_us_per_call')} µs/call)",
            "(>= 0.8x)",
            met(ra.get("server_cpu_warm_vs_noop") is not None and ra["server_cpu_warm_vs_noop"] >= 0.8),
        ),
        (
            "server CPU per Check, no-op / full server, cache cold (server-side view)",
            f"{ra.get('server_cpu_cold_vs_noop')}x ({s['check_cold'].get('server_cpu_us_per_call')} µs/call)",
            "(>= 0.5x)",
            met(ra.get("server_cpu_cold_vs_noop") is not None and ra["server_cpu_cold_vs_noop"] >= 0.5),
        ),
        (
            "BatchCheck(100), cache warm",
            f"{r['batch100_decisions_per_s']:,.0f} decisions/s",
            ">= 100,000/s",
            met(r["batch100_decisions_per_s"] >= 100_000),
        ),
        *_object_batch_rows(r, met),
        (
            "gRPC Authenticate, warm personal keys, vs no-op server",
            f"{ra['authenticate_warm_vs_noop']}x ({s['authenticate_warm']['rate']:.0f} vs "
            f"{r['noop']['authenticate']['rate']:.0f}/s; {s['authenticate_warm']['errors']} errors)",
            ">= 0.8x",
            met(ra["authenticate_warm_vs_noop"] >= 0.8),
        ),
        (
            "BatchCheck(100), cache cold",
            f"{s['batch100_cold']['decisions_per_s']:,.0f} decisions/s",
            "(no target)",
            "n/a",
        ),
    ]
    big = r["mode"] == "full"
    out.append(
        (
            "start to SERVING" + (" (large, PostgreSQL)" if big else " (small, SQLite)"),
            f"{r['startup_s']} s",
            "<= 10 s",
            met(r["startup_s"] <= 10) if big else "n/a",
        )
    )
    out.append(
        (
            "RSS after mixed workload" + (" (large, all orgs loaded)" if big else ""),
            f"{r['rss_mib']} MiB",
            "<= 1024 MiB",
            met(r["rss_mib"] <= 1024) if big else "n/a",
        )
    )
    w = s["writes"]
    out.append(
        (
            "grant/revoke visible on the same replica, p99",
            f"{r['write_visible_p99_ms']} ms (p50 {w['visible'].get('p50_ms')} ms; "
            + (f"median of rounds {w['rounds_p99_ms']}; " if len(w.get("rounds_p99_ms", [])) > 1 else "")
            + f"{w['not_visible']} not visible, {w['errors']} errors)",
            "<= 20 ms",
            met(r["write_visible_p99_ms"] is not None and r["write_visible_p99_ms"] <= 20 and w["not_visible"] == 0),
        )
    )
    pairs = r["noop"].get("pairs_under_load", {})
    floor = pairs.get("pair")
    pgf = r["noop"].get("pg_floor_under_load")
    if floor:
        out.append(
            (
                "its floor: two calls in turn to the no-op server under the same load, p99 "
                "(+ PostgreSQL alone, a write's round trip, p99)",
                f"{floor.get('p99_ms')} ms (p50 {floor.get('p50_ms')} ms; rounds {pairs.get('rounds_p99_ms', '-')})"
                + (
                    f" + {pgf.get('p99_ms')} ms (p50 {pgf.get('p50_ms')} ms; rounds {pgf.get('rounds_p99_ms', '-')})"
                    if pgf
                    else ""
                ),
                "(no target)",
                "n/a",
            )
        )
    out.append(_propagation_row(r, met))
    out += _worker_rows(r, met)
    return out


def _worker_rows(r: dict[str, Any], met: Callable[[bool | None], str]) -> list[tuple[str, str, str, str]]:
    """``serve --workers N`` (SPEC §5: at least 0.8*N times one process): the rate where the
    server had N cores of its own, otherwise server CPU per decision. None before workers."""
    wk = r.get("workers")
    if not wk:
        return []
    one = wk["by_workers"]["1"]
    out = []
    for n, x in sorted(wk["by_workers"].items(), key=lambda kv: int(kv[0])):
        if n == "1":
            continue
        k = int(n)
        if x["pinned"]:
            value, ok = x["rate_vs_one"], x["rate_vs_one"] >= 0.8 * k
            how = f"calls/s {x['rate']:.0f} vs {one['rate']:.0f} (server on {n} cores, load generator on the rest)"
        else:
            value, ok = x["cpu_scaling"], x["cpu_scaling"] >= 0.8 * k
            how = (
                f"server CPU per decision {x['server_cpu_us_per_call']} vs {one['server_cpu_us_per_call']} µs "
                f"(no core left for the load generator: calls/s {x['rate']:.0f} vs {one['rate']:.0f}, "
                f"{x['rate_vs_one']}x, the client on the same cores)"
            )
        out.append(
            (f"Check with {n} workers vs 1 (warm, 16 connections)", f"{value}x; {how}", f">= {0.8 * k:.1f}x", met(ok))
        )
    w = wk.get("write_visible")
    if w:
        p99 = w["visible"].get("p99_ms")
        out.append(
            (
                f"grant/revoke visible with {w['workers']} workers, through another connection, p99",
                f"{p99} ms (p50 {w['visible'].get('p50_ms')} ms; first Check stale {w['first_check_stale']} of "
                f"{w['writes']}, {w['errors']} errors; Check load {w.get('check_load', {}).get('rate', '?')} of "
                f"{w.get('check_load', {}).get('target_rate', '?')}/s)",
                "<= 20 ms",
                met(p99 is not None and p99 <= 20 and w["first_check_stale"] == 0 and w["errors"] == 0),
            )
        )
    return out


def _worker_section(r: dict[str, Any]) -> list[str]:
    wk = r.get("workers")
    if not wk:
        return []
    lines = [
        "",
        "## Worker processes (`serve --workers N`)",
        "",
        f"{wk['cores']} cores; warm Check, 32 in flight over {wk['channels']} connections, the servers measured in "
        "turns (every round's figures kept). Where the machine has more cores than N, the server is pinned to N "
        "cores and the load generator to the others, and calls/s is the measure; where it has not, the load "
        "generator shares the server's cores and the server's CPU per decision (all its processes) is: N workers "
        "on N cores answer N / (CPU per decision) calls a second.",
        "",
        "| workers | calls/s | vs 1 | server CPU per call | cores busy | CPU scaling (N x CPU1 / CPUN) "
        "| p99 | load generator |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, x in sorted(wk["by_workers"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {n} | {x['rate']:.0f} | {x['rate_vs_one']}x | {x['server_cpu_us_per_call']} µs | "
            f"{x['server_cpu_busy']} | {x['cpu_scaling']}x | {x['p99_ms']} ms | "
            f"{'other cores' if x['pinned'] else 'same cores'} |"
        )
    return lines


def _propagation_row(r: dict[str, Any], met: Callable[[bool | None], str]) -> tuple[str, str, str, str]:
    """Visible on another replica: measured in the run (``propagation``); results from before
    that carry only the figure and a note on where it came from."""
    prop = r.get("propagation_p99_ms")
    p = r.get("propagation")
    if prop is None:
        return ("visible on another replica, p99", f"not measured ({r.get('propagation_note')})", "<= 100 ms", "n/a")
    if not p:
        return ("visible on another replica, p99", f"{prop} ms ({r.get('propagation_note')})", "<= 100 ms", "n/a")
    load = p.get("check_load", {})
    return (
        "visible on another replica, p99 (same run, same Check load)",
        f"{prop} ms (p50 {p['visible'].get('p50_ms')} ms; {p['not_visible']} not visible within {p['bound_s']} s, "
        f"{p['errors']} errors; Check load {load.get('rate', '?')} of {load.get('target_rate', '?')}/s "
        "over both replicas)",
        "<= 100 ms",
        met(prop <= 100 and p["not_visible"] == 0 and p["errors"] == 0),
    )


def _object_check_rows(r: dict[str, Any], met: Callable[[bool | None], str]) -> list[tuple[str, str, str, str]]:
    """Checks naming an object (R26, R27): the engine against plain casbin, and through gRPC
    against the same no-op rounds as the Check rows. None in results from before object ACLs."""
    out = []
    eo = r["engine_vs_casbin"].get("objects")
    if eo and eo.get("requests"):
        out.append(
            (
                "engine vs plain casbin.Enforcer, Checks with an object (decisions/s)",
                f"{eo['ratio']}x ({eo['mismatches']} mismatches / {eo['requests']}; {eo['allowed_fraction']} allowed)",
                ">= 10x, 0 mismatches",
                met(eo["ratio"] >= 10 and eo["mismatches"] == 0),
            )
        )
    ratio = r["ratios"].get("check_object_warm_vs_noop")
    if ratio is not None:
        s = r["server"]
        out.append(
            (
                "gRPC Check with an object, cache warm, vs no-op server",
                f"{ratio}x (all rounds: {s['check_object_warm']['rate']:.0f} vs {r['noop']['rate']:.0f}/s)",
                ">= 0.8x",
                met(ratio >= 0.8),
            )
        )
    return out


def _object_batch_rows(r: dict[str, Any], met: Callable[[bool | None], str]) -> list[tuple[str, str, str, str]]:
    """BatchCheck with objects and PlanObjects (R26); none in results from before object ACLs."""
    out = []
    batch = r.get("batch100_objects_decisions_per_s")
    if batch is not None:
        out.append(
            (
                "BatchCheck(100) with objects, cache warm",
                f"{batch:,.0f} decisions/s",
                ">= 100,000/s",
                met(batch >= 100_000),
            )
        )
    p99 = r.get("plan_objects_p99_ms")
    if p99 is not None:
        plan, floor = r["server"]["plan_objects"], r["noop"].get("plan_objects", {})
        rounds = plan.get("rounds_p99_ms", [])
        out.append(
            (
                "PlanObjects p99, one call in flight",
                f"{p99} ms (p50 {plan.get('p50_ms')} ms"
                + (f"; median of rounds {rounds}" if len(rounds) > 1 else "")
                + f"; no-op server p99 {floor.get('p99_ms')} ms; {plan['errors']} errors)",
                "<= 5 ms",
                met(p99 <= 5 and plan["errors"] == 0),
            )
        )
    return out


def _propagation_details(r: dict[str, Any]) -> list[str]:
    p = r.get("propagation")
    if not p:
        return []
    return [
        f"- Another replica: {r.get('propagation_note')}. Visible on B from the write call on A: "
        f"{_percentiles(p['visible'])}; from A's answer: {_percentiles(p['after_commit'])}; the write alone "
        f"{_percentiles(p['commit'])}; {p.get('mean_polls')} Checks to B per write on average (one every "
        "0.5 ms until it flips). The Check load's latency over both replicas: "
        + _percentiles(p.get("check_load", {}))
        + "."
    ]


def _acl_text(d: dict[str, Any]) -> str:
    if not d.get("acls"):
        return ""
    k = d["acls_by_kind"]
    return (
        f" {d.get('teams', 0):,} teams. {d['acls']:,} object ACLs ({k['deployment']:,} deployments, "
        f"{k['work_pool']:,} work pools, {k['block']:,} blocks; {d['acls_with_grants']:,} with grant entries) in "
        f"{d['workspaces_with_acls']:,} workspaces, at most {d['largest_workspace_acls']} in one; "
        f"{d['deployment_pools']:,} deployments name a work pool, {d['delegating_deployments']:,} of them one with "
        "an ACL (R27)."
    )


def _object_details(r: dict[str, Any]) -> list[str]:
    """Detail lines for Checks with objects, BatchCheck with objects and PlanObjects (R26)."""
    s = r["server"]
    if "check_object_warm" not in s:
        return []
    eo = r["engine_vs_casbin"].get("objects") or {}
    plan, answers = s["plan_objects"], s.get("plan_answers", {})
    busiest = ", ".join(f"{b['workspace']} {b['kind']} {b['governed']}" for b in r.get("plan_objects_busiest", []))
    return [
        f"- Checks with an object: four in five name an object an ACL governs (directly or through its work "
        f"pool), the rest one without an ACL; {eo.get('allowed_fraction')} of them allowed. Engine "
        f"{eo.get('engine_us')} µs, plain casbin {eo.get('casbin_us')} µs per decision. Through gRPC, cache warm "
        f"(2,000 distinct, 32 in flight): {s['check_object_warm']['rate']:.0f}/s, rounds against the same no-op "
        f"rounds {s['round_ratios']['warm_obj']}; server CPU ratios {s['round_cpu_ratios']['warm_obj']} "
        f"({s['check_object_warm'].get('server_cpu_us_per_call')} µs/call).",
        "- BatchCheck(100) with objects, rounds, decisions/s (median reported): "
        f"{s['batch100_objects'].get('rounds_decisions_per_s', '-')}; server CPU per batch "
        f"{s['batch100_objects'].get('server_cpu_us_per_call')} µs.",
        f"- PlanObjects: {answers.get('calls', '?')} requests (subject, workspace, kind, scope), a tenth in the "
        f"ten (workspace, kind) pairs with the most governed objects ({busiest}); answers {answers.get('kinds')}, "
        f"{answers.get('mean_ids')} ids on average, at most {answers.get('max_ids')}. One call in flight: "
        + _percentiles(plan)
        + f" (rounds' p99 {plan.get('rounds_p99_ms')}); the no-op server: "
        + _percentiles(r["noop"].get("plan_objects", {}))
        + ".",
    ]


def _percentiles(d: dict[str, Any]) -> str:
    if not d:
        return "not measured"
    return ", ".join(f"{k[:-3]} {d[k]} ms" for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms") if k in d)


def _load_text(d: dict[str, Any]) -> str:
    took = f"{d['load_s']} s" if d.get("load_s") is not None else "time not recorded"
    return f"{took}{' (loaded by an earlier run and reused)' if d.get('reused') else ''}"


def table(r: dict[str, Any]) -> str:
    lines = ["| measure | measured | target | met? |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(r)]
    return "\n".join(lines)


def plots(r: dict[str, Any], outdir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    made = []
    s, n = r["server"], r["noop"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    names = ["no-op server", "Check warm", "Check cold"]
    vals = [n["rate"], s["check_warm"]["rate"], s["check_cold"]["rate"]]
    ax[0].bar(names, vals, color=["#999", "#2a7", "#e83"])
    ax[0].set_ylabel("calls/s (32 in flight, loopback)")
    ax[0].set_title("gRPC Check vs the transport ceiling")
    lat = s["latency_at_half"]
    ks = ["p50_ms", "p90_ms", "p99_ms", "p999_ms"]
    ax[1].bar([k[:-3] for k in ks], [lat.get(k, 0) for k in ks], color="#37c")
    ax[1].set_ylabel("ms")
    ax[1].set_title(f"Check latency at 50% of max ({lat.get('target_rate', 0):.0f}/s)")
    fig.tight_layout()
    fig.savefig(outdir / "throughput.png", dpi=90)
    plt.close(fig)
    made.append("throughput.png")
    sc = r.get("scaling")
    per_org = r["engine_vs_casbin"].get("per_org", [])
    if sc or per_org:
        fig, ax = plt.subplots(1, 3, figsize=(14, 4))
        if sc:
            g = [x["grants"] for x in sc]
            ax[0].plot(g, [x["rss_all_loaded_mib"] for x in sc], "o-", label="RSS, all orgs loaded (MiB)")
            ax[0].plot(g, [x["rss_start_mib"] for x in sc], "o--", label="RSS at SERVING (MiB)")
            ax[0].set_xscale("log")
            ax[0].set_xlabel("workspace grants")
            ax[0].legend()
            ax[0].set_title("memory vs grants")
            ax[1].plot(g, [x["startup_s"] for x in sc], "o-", label="start to SERVING (s)")
            ax[1].plot(g, [x["check_cold_p50_ms"] for x in sc], "o-", label="Check cold p50 (ms), largest org")
            ax[1].set_xscale("log")
            ax[1].set_xlabel("workspace grants")
            ax[1].legend()
            ax[1].set_title("start-up and latency vs grants")
        if per_org:
            pts = sorted(per_org, key=lambda x: x["grants"])
            ax[2].plot([x["grants"] for x in pts], [x["engine_us"] for x in pts], "o-", label="decision (us)")
            ax[2].plot([x["grants"] for x in pts], [x["build_s"] * 1000 for x in pts], "s-", label="build (ms)")
            ax[2].set_xscale("log")
            ax[2].set_yscale("log")
            ax[2].set_xlabel("grants in the organization")
            ax[2].legend()
            ax[2].set_title("engine vs organization size")
        fig.tight_layout()
        fig.savefig(outdir / "scaling.png", dpi=90)
        plt.close(fig)
        made.append("scaling.png")
    return made


def write(r: dict[str, Any], path: Path) -> None:
    images = plots(r, path.parent / "img" / "benchmarks")
    m = r["machine"]
    d = r["dataset"]
    s = r["server"]
    e = r["engine_vs_casbin"]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`) from `bench/results/latest.json`; do not edit by "
        "hand (the profiling notes below come from `bench/NOTES.md`).",
        "",
        f"Run {r['started']} on **{m['cpu']}, {m['cores']} cores, {m['memory_mib']:,} MiB**, Python "
        f"{m['python']}, grpcio {m['grpcio']}, pycasbin {m['pycasbin']} ({m['platform']}). Load average "
        f"{m['load_avg_at_start']} at start, {r['load_avg_at_end']} at the end: other work shared the machine, "
        "so every target is a ratio measured side by side in the same run.",
        "",
        f"Data set `{d['name']}` (seed {d['seed']}) on {r['database']}: {d['organizations']:,} organizations, "
        f"{d['workspaces']:,} workspaces, {d['users']:,} users ({d['memberships']:,} memberships), "
        f"{d['grants']:,} workspace grants, {d['service_accounts']:,} service accounts, {d['custom_roles']} "
        f"custom roles, default roles on {d['default_roles']:,} workspaces. Zipf-skewed: the largest organization "
        f"has {d['largest_org_members']:,} members, {d['largest_org_workspaces']:,} workspaces and "
        f"{d['largest_org_grants']:,} grants; the median one {d['median_org_grants']} grants." + _acl_text(d),
        "",
        "Run it: `make bench` (this page; needs PostgreSQL on 127.0.0.1:5432 with trust auth for user "
        "`postgres`, else it starts a throw-away cluster; the large data set is loaded once and reused), "
        "`make bench ARGS=--quick` (small data set on SQLite, about 2-3 minutes, writes "
        "`bench/results/quick.json` only), `python -m bench.generate large --database-url URL` (the data set "
        "alone), `python -m bench.profile warm|cold|batch|write` (py-spy of the server under one workload).",
        "",
        "## SPEC §5",
        "",
        table(r),
        "",
    ]
    parts += [f"![{i}](img/benchmarks/{i})" for i in images]
    lat = s["latency_at_half"]
    after = s["writes"].get("check_after", {})
    load_rate = s["writes"].get("check_load", {}).get("rate", "?")
    parts += [
        "",
        "## Details",
        "",
        f"- Plain casbin: {e['method']} {e['requests']:,} requests: casbin {e['casbin_us']} µs, engine "
        f"{e['engine_us']} µs per decision.",
        f"- Ratios are the median of interleaved rounds (no-op, cold, warm in turn): warm "
        f"{s['round_ratios']['warm']}, cold {s['round_ratios']['cold']}; server CPU ratios warm "
        f"{s['round_cpu_ratios']['warm']}, cold {s['round_cpu_ratios']['cold']}.",
        "- Calls/s ratios use the same client process (Python `grpc.aio`, 32 in flight) against each server. "
        f"The server kept {r['noop'].get('server_cpu_busy')} (no-op) and "
        f"{s['check_warm'].get('server_cpu_busy')} (full, warm) cores busy (one event loop: about 1.0 at most). "
        "Well below one core, the client bounds the rate; the server-side view (CPU per call, no-op / full) "
        "is reported next to the calls/s ratios for that reason.",
        f"- No-op server: {r['noop']['rate']:.0f} Check/s; BatchCheck(100) "
        f"{r['noop']['batch100']['decisions_per_s']:,.0f} items/s.",
        "- BatchCheck(100) rounds, decisions/s (median reported): no-op "
        f"{r['noop']['batch100'].get('rounds_decisions_per_s', '-')}, full "
        f"{s['batch100'].get('rounds_decisions_per_s', '-')}; server CPU per batch "
        f"{r['noop']['batch100'].get('server_cpu_us_per_call')} vs {s['batch100'].get('server_cpu_us_per_call')} µs "
        "(median rounds).",
        f"- Check warm: {s['check_warm']['rate']:.0f}/s (p50 {s['check_warm'].get('p50_ms')} ms, p99 "
        f"{s['check_warm'].get('p99_ms')} ms at 32 in flight). Cold (every request distinct, organizations "
        f"loaded): {s['check_cold']['rate']:.0f}/s.",
        f"- Latency at 50% of the maximum warm rate ({lat.get('target_rate', 0):.0f}/s, open loop): p50 "
        f"{lat.get('p50_ms')} ms, p90 {lat.get('p90_ms')} ms, p99 {lat.get('p99_ms')} ms, "
        f"p999 {lat.get('p999_ms')} ms. The no-op server at the same rate: "
        + _percentiles(r["noop"].get("latency_at_half", {}))
        + ".",
        f"- Writes (AccessService grant then revoke, then Check with `min_revision` on the same server, under "
        f"that Check load, generated at nice 10 and delivered at {load_rate} of {lat.get('target_rate', 0):.0f}/s): "
        f"{s['writes']['writes']} writes, visible p50 {s['writes']['visible'].get('p50_ms')} ms, "
        f"p99 {s['writes']['visible'].get('p99_ms')} ms; the write alone p50 {s['writes']['commit'].get('p50_ms')} ms, "
        f"p99 {s['writes']['commit'].get('p99_ms')} ms; the verifying Check alone p50 "
        f"{after.get('p50_ms')} ms, p99 {after.get('p99_ms')} ms. The no-op server under the same load, two "
        "Checks in turn (a write and the Check that shows it are two calls in turn too): "
        + _percentiles(r["noop"].get("pairs_under_load", {}).get("pair", {}))
        + "; the first call alone "
        + _percentiles(r["noop"].get("pairs_under_load", {}).get("first", {}))
        + ".",
        *_propagation_details(r),
        *_object_details(r),
        f"- Loading the sampled organizations on first use: {s['sample_load_s']} s; the mixed workload that "
        f"touches every organization: {s['mixed'].get('load_all_s')} s.",
        f"- Data set load through the importer: {_load_text(r['dataset_load'])}.",
    ]
    parts += _worker_section(r)
    if r.get("scaling"):
        parts += [
            "",
            "## Scaling",
            "",
            "| data set | grants | largest org grants | start to SERVING | RSS at SERVING "
            "| RSS all orgs loaded | load all orgs | Check cold p50 / p99 (largest org, 1 in flight) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for x in r["scaling"]:
            parts.append(
                f"| {x['dataset']} | {x['grants']:,} | {x['largest_org_grants']:,} | {x['startup_s']} s | "
                f"{x['rss_start_mib']} MiB | {x['rss_all_loaded_mib']} MiB | {x['load_all_orgs_s']} s | "
                f"{x['check_cold_p50_ms']} / {x['check_cold_p99_ms']} ms |"
            )
    per_org = e.get("per_org", [])
    if per_org:
        parts += [
            "",
            "Engine vs organization size (build = snapshot lines to OrgEnforcer):",
            "",
            "| org | grants | members | build | decision |",
            "|---|---|---|---|---|",
        ]
        for x in sorted(per_org, key=lambda x: -x["grants"])[:8]:
            parts.append(
                f"| {x['org']} | {x['grants']:,} | {x['members']:,} | {x['build_s'] * 1000:.1f} ms | "
                f"{x['engine_us']} µs |"
            )
    if NOTES.exists():
        parts += ["", NOTES.read_text().strip()]
    path.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    res = json.loads(Path(sys.argv[1]).read_text())
    print(table(res))
    if len(sys.argv) > 2:
        write(res, Path(sys.argv[2]))
