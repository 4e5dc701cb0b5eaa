"""Prometheus metrics, served on their own HTTP port.

Each server owns a private registry, so several servers in one process (tests) do not
collide. Names are prefixed ``orgauthz_``; docs/operations.md lists them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("orgauthz_decisions", "Decisions by result", ["result"], registry=r)
        self._allow = self.decisions.labels("allow")
        self._deny = self.decisions.labels("deny")
        self.latency = Histogram(
            "orgauthz_rpc_latency_seconds",
            "Server-side latency by method",
            ["method"],
            buckets=_BUCKETS,
            registry=r,
        )
        self._latency_children: dict[str, Histogram] = {}
        self.feed_revision = Gauge("orgauthz_feed_revision", "Revision applied by this replica", registry=r)
        self.feed_lag = Gauge("orgauthz_feed_lag_revisions", "Revisions behind the store", registry=r)
        self.feed_lag_seconds = Gauge(
            "orgauthz_feed_lag_seconds",
            "Seconds since the feed last reached the store's head (0: caught up)",
            registry=r,
        )
        self.reloads = Gauge("orgauthz_engine_reloads", "Full index re-reads (far behind or a gap)", registry=r)
        self.org_loads = Gauge("orgauthz_org_loads", "Organizations loaded since start", registry=r)
        self.errors = Counter(
            "orgauthz_dependency_errors", "Errors talking to a dependency", ["dependency"], registry=r
        )
        self._http: tuple[Any, threading.Thread] | None = None

    def decided(self, allowed: bool) -> None:
        (self._allow if allowed else self._deny).inc()

    def decided_many(self, allowed: int, denied: int) -> None:
        """Counts a batch's decisions with two increments instead of one per item."""
        if allowed:
            self._allow.inc(allowed)
        if denied:
            self._deny.inc(denied)

    def observe(self, method: str, seconds: float) -> None:
        """Records one call's latency (what :meth:`timed` does, without a context manager)."""
        child = self._latency_children.get(method)
        if child is None:
            child = self._latency_children[method] = self.latency.labels(method)
        child.observe(seconds)

    @contextmanager
    def timed(self, method: str) -> Iterator[None]:
        child = self._latency_children.get(method)
        if child is None:
            child = self._latency_children[method] = self.latency.labels(method)
        start = time.perf_counter()
        try:
            yield
        finally:
            child.observe(time.perf_counter() - start)

    def bind_gauges(self, applied: Callable[[], float], loads: Callable[[], float]) -> None:
        self.feed_revision.set_function(applied)
        self.org_loads.set_function(loads)

    def bind_replication(
        self,
        cache_counts: Callable[[], dict[tuple[str, str], float]],
        lag_revisions: Callable[[], float],
        lag_seconds: Callable[[], float],
        reloads: Callable[[], float],
    ) -> None:
        """Cache lookups per tier are read at scrape time: the hot path only bumps plain ints."""
        self.registry.register(_CacheCollector(cache_counts))
        self.feed_lag.set_function(lag_revisions)
        self.feed_lag_seconds.set_function(lag_seconds)
        self.reloads.set_function(reloads)

    def serve(self, listen: str) -> int:
        """Starts the HTTP endpoint (``/metrics``) in a daemon thread; returns the port
        (port 0 in ``listen`` picks a free one). Raises OSError when it cannot bind."""
        host, _, port = listen.rpartition(":")
        server, thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        self._http = (server, thread)
        return int(server.server_port)

    def close(self) -> None:
        """Stops the HTTP endpoint, if serving; the port is free when this returns."""
        http, self._http = self._http, None
        if http is not None:
            server, thread = http
            server.shutdown()
            server.server_close()
            thread.join()


class _CacheCollector(Collector):
    """``orgauthz_cache_total{tier, result}``."""

    def __init__(self, counts: Callable[[], dict[tuple[str, str], float]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "orgauthz_cache", "Decision cache lookups by tier and result", labels=["tier", "result"]
        )
        for (tier, result), value in sorted(self._counts().items()):
            family.add_metric([tier, result], value)
        yield family
