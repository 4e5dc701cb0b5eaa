"""``make bench ARGS=--quick`` runs end to end (a smoke test: no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_runs_and_engine_matches_plain_casbin(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    for key in ("engine_vs_casbin", "check_warm_vs_noop", "check_cold_vs_noop"):
        assert r["ratios"][key] > 0
    assert r["engine_vs_casbin"]["mismatches"] == 0
    assert r["engine_vs_casbin"]["requests"] > 0
    # R26, R27: Checks naming objects, BatchCheck with objects and PlanObjects.
    objects = r["engine_vs_casbin"]["objects"]
    assert objects["requests"] > 0
    assert objects["mismatches"] == 0
    assert 0.1 < objects["allowed_fraction"] < 0.9
    assert r["dataset"]["acls"] == 1000
    assert r["ratios"]["check_object_warm_vs_noop"] > 0
    assert r["batch100_objects_decisions_per_s"] > 0
    assert all(run["errors"] == 0 for run in r["server"]["check_object_warm"]["runs"])
    assert r["server"]["batch100_objects"]["errors"] == 0
    plan = r["server"]["plan_objects"]
    assert plan["errors"] == 0
    assert r["plan_objects_p99_ms"] > 0
    answers = r["server"]["plan_answers"]["kinds"]
    assert {"ALL", "ALL_EXCEPT", "ONLY"} <= set(answers), answers
    writes = r["server"]["writes"]
    assert writes["errors"] == 0
    assert writes["not_visible"] == 0
    for key in ("machine", "batch100_decisions_per_s", "write_visible_p99_ms", "propagation_p99_ms"):
        assert key in r
    # SPEC §5, another replica: measured in this run, under the write phase's Check load.
    prop = r["propagation"]
    assert prop["errors"] == 0
    assert prop["not_visible"] == 0
    assert prop["visible"]["n"] == prop["writes"] == writes["writes"]
    assert r["propagation_p99_ms"] == prop["visible"]["p99_ms"] > 0
    assert prop["check_load"]["target_rate"] == writes["check_load"]["target_rate"]
    assert prop["check_load"]["errors"] == 0
    assert "measured in this run" in r["propagation_note"]
    assert "| measure |" in proc.stdout
    # Worker processes: every count measured, every write seen at once through another connection.
    wk = r["workers"]
    assert {"1", "2"} <= set(wk["by_workers"])
    for x in wk["by_workers"].values():
        assert x["rate"] > 0
        assert x["server_cpu_us_per_call"] > 0
    assert wk["write_visible"]["errors"] == 0
    assert wk["write_visible"]["first_check_stale"] == 0
    assert wk["write_visible"]["writes"] == writes["writes"]
