"""Prometheus metrics, served on their own HTTP port.

Each server owns a private registry, so several servers in one process (tests) do not
collide. Names are prefixed ``orgauthz_``; docs/operations.md lists them.

The per-call metrics (decisions by result, latency by method) are plain ints and floats
bumped on the event loop and turned into metric families at scrape time by
:class:`_CallCollector`: a ``prometheus_client`` Counter or Histogram takes a lock and
a few method calls per update, which cost a cached Check more than the decision itself.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _Latency:
    """One method's latency histogram: a count per bucket (the last one is +Inf), and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Bumped only on the event loop thread; a scrape (HTTP thread) reads them as they are.
        self.allowed = 0
        self.denied = 0
        self.latency: dict[str, _Latency] = {}
        self.verdicts: dict[str, int] = {}  # Envoy's Check (ext_authz): answers by verdict
        r.register(_CallCollector(self))
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

    def decided(self, allowed: int, denied: int) -> None:
        """Counts decisions (the decision path's outermost layer calls it)."""
        self.allowed += allowed
        self.denied += denied

    def verdict(self, verdict: str) -> None:
        """Counts one answer of Envoy's ``Authorization/Check`` ("allowed", "denied", "no route"...)."""
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1

    def observe(self, method: str, seconds: float) -> None:
        """Records one call's latency (what :meth:`timed` does, without a context manager).
        A bucket counts calls with ``seconds <= le``, as Prometheus histograms do."""
        h = self.latency.get(method)
        if h is None:
            h = self.latency[method] = _Latency()
        h.counts[bisect_left(_BUCKETS, seconds)] += 1
        h.total += seconds

    @contextmanager
    def timed(self, method: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(method, time.perf_counter() - start)

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

    def bind_worker(self, slot: int, sync_timeouts: Callable[[], float]) -> None:
        """With ``serve --workers``: this worker's writes that returned before every other
        worker applied them (``orgauthz_worker_sync_timeouts_total{worker}``)."""
        self.registry.register(_WorkerCollector(str(slot), sync_timeouts))

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


class _WorkerCollector(Collector):
    def __init__(self, slot: str, sync_timeouts: Callable[[], float]) -> None:
        self._slot = slot
        self._sync_timeouts = sync_timeouts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "orgauthz_worker_sync_timeouts",
            "Writes of this worker that returned before every other worker had applied them "
            "(worker_sync_timeout_s; those workers' decisions wait for the write instead)",
            labels=["worker"],
        )
        family.add_metric([self._slot], self._sync_timeouts())
        yield family


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


class _CallCollector(Collector):
    """``orgauthz_decisions_total{result}``, ``orgauthz_rpc_latency_seconds{method}`` and
    ``orgauthz_ext_authz_verdicts_total{verdict}``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        m = self._metrics
        decisions = CounterMetricFamily("orgauthz_decisions", "Decisions by result", labels=["result"])
        decisions.add_metric(["allow"], m.allowed)
        decisions.add_metric(["deny"], m.denied)
        yield decisions
        verdicts = CounterMetricFamily(
            "orgauthz_ext_authz_verdicts", "Answers of Envoy's Authorization/Check by verdict", labels=["verdict"]
        )
        for verdict, n in sorted(m.verdicts.items()):
            verdicts.add_metric([verdict], n)
        yield verdicts
        latency = HistogramMetricFamily(
            "orgauthz_rpc_latency_seconds", "Server-side latency by method", labels=["method"]
        )
        bounds = [*map(floatToGoString, _BUCKETS), "+Inf"]
        for method, h in sorted(m.latency.items()):
            counts, total = list(h.counts), h.total  # a consistent-enough copy; the loop may add a call
            cumulative, running = [], 0
            for le, n in zip(bounds, counts, strict=True):
                running += n
                cumulative.append((le, running))
            latency.add_metric([method], cumulative, sum_value=total)
        yield latency
