"""The Prometheus endpoint on its own port (SPEC §2): decisions by result and the latency
histogram count the real traffic, scraped over HTTP the way Prometheus does."""

from __future__ import annotations

import asyncio
import shutil
import socket
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orgauthz.api.metrics import Metrics
from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from tests.conftest import settings_for
from tests.support.orgs import seed

DEMO = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "demo.yaml").read_text())


@pytest.fixture
async def metered(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[App]:
    """A running server with its metrics endpoint on a free port."""
    shutil.copy(sqlite_template, tmp_path / "orgauthz.db")
    app = App(settings_for(f"sqlite:///{tmp_path / 'orgauthz.db'}", metrics_listen="127.0.0.1:0"))
    await app.start()
    yield app
    await app.stop(0)


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(sample name, labels): value}`` from ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _check(subject: str, workspace: str, scope: str, rev: int = 0) -> pb.CheckRequest:
    return pb.CheckRequest(subject=subject, workspace=workspace, scope=scope, min_revision=rev)


async def test_decisions_and_check_latency_are_counted(metered: App, policy: PolicySet) -> None:
    rev = seed(metered.db, policy, DEMO)
    assert metered.metrics_port not in (0, metered.port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        stub = pb_grpc.AuthorizationServiceStub(channel)
        allowed = [
            _check("user:bob", "acme-prod", "manage_flows", rev),
            _check("user:carol", "acme-prod", "see_flows"),
            _check("user:alice", "acme-sandbox", "manage_workspace_users"),
        ]
        denied = [_check("user:carol", "acme-prod", "manage_flows"), _check("user:nobody", "acme-prod", "see_flows")]
        for request in allowed:
            assert (await stub.Check(request, timeout=10)).allowed
        for request in denied:
            assert not (await stub.Check(request, timeout=10)).allowed
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.Check(_check("user:bob", "acme-prod", "fly_rockets"), timeout=10)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        batch = await stub.BatchCheck(pb.BatchCheckRequest(items=[allowed[0], denied[0], denied[1]]), timeout=10)
        assert [r.allowed for r in batch.results] == [True, False, False]

    samples = await asyncio.to_thread(_scrape, metered.metrics_port)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    # A decision is an answer: the INVALID_ARGUMENT call is none; each batch item is one.
    assert value("orgauthz_decisions_total", result="allow") == 3 + 1
    assert value("orgauthz_decisions_total", result="deny") == 2 + 2
    # Every Check call is timed, the failed one included.
    calls = len(allowed) + len(denied) + 1
    assert value("orgauthz_rpc_latency_seconds_count", method="Check") == calls
    assert value("orgauthz_rpc_latency_seconds_bucket", method="Check", le="+Inf") == calls
    assert value("orgauthz_rpc_latency_seconds_sum", method="Check") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == "orgauthz_rpc_latency_seconds_bucket" and dict(labels)["method"] == "Check"
    )
    assert len(buckets) > 2
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)  # cumulative
    assert value("orgauthz_rpc_latency_seconds_count", method="BatchCheck") == 1


async def test_metrics_port_is_released_when_the_server_stops(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "orgauthz.db")
    app = App(settings_for(f"sqlite:///{tmp_path / 'orgauthz.db'}", metrics_listen="127.0.0.1:0"))
    await app.start()
    port = app.metrics_port
    assert (await asyncio.to_thread(_scrape, port)) != {}
    await app.stop(0)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


async def test_no_metrics_endpoint_when_disabled(app: App) -> None:
    assert app.settings.metrics_listen == ""
    assert app.metrics_port == 0


def test_latency_buckets_count_calls_at_or_below_their_bound() -> None:
    metrics = Metrics()
    for seconds in (0.0001, 0.0003, 5.0):  # exactly the first bound, between bounds, past the last
        metrics.observe("Check", seconds)
    metrics.decided(1, 0)
    metrics.decided(2, 3)
    samples = {
        (s.name, s.labels.get("le", s.labels.get("result", ""))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.labels.get("method", "Check") == "Check"
    }
    bucket = "orgauthz_rpc_latency_seconds_bucket"
    assert samples[(bucket, "0.0001")] == 1
    assert samples[(bucket, "0.00025")] == 1
    assert samples[(bucket, "0.0005")] == 2
    assert samples[(bucket, "1.0")] == 2
    assert samples[(bucket, "+Inf")] == 3
    assert samples[("orgauthz_rpc_latency_seconds_count", "")] == 3
    assert samples[("orgauthz_rpc_latency_seconds_sum", "")] == pytest.approx(5.0004)
    assert samples[("orgauthz_decisions_total", "allow")] == 3
    assert samples[("orgauthz_decisions_total", "deny")] == 3
