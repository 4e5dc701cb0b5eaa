"""The servers the benchmark runs, each in its own process; each prints ``PORT <n>`` when listening.

``python -m bench.servers noop``: a ``grpc.aio`` server with orgauthz's ``AuthorizationService``
messages that answers every Check "denied", every BatchCheck with one result per item and
every PlanObjects "ALL", doing nothing else: the transport ceiling on this machine.

``python -m bench.servers app --database-url URL [--redis-url URL]``: the full orgauthz server
(:class:`App`), shared-secret authentication, no metrics port; with ``--redis-url``, a replica
that learns of other replicas' writes through Redis pub/sub (polling as the backstop).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
from typing import Any

import grpc

from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

TOKEN = "bench-secret-token"  # noqa: S105  # a fixed secret for a loopback benchmark


class NoopServicer(pb_grpc.AuthorizationServiceServicer):  # type: ignore[misc]  # generated
    async def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        return pb.CheckResponse(allowed=False, revision=1)

    async def BatchCheck(self, request: pb.BatchCheckRequest, context: Any) -> pb.BatchCheckResponse:
        return pb.BatchCheckResponse(results=[pb.CheckResponse(allowed=False, revision=1) for _ in request.items])

    async def Authenticate(self, request: pb.AuthenticateRequest, context: Any) -> pb.AuthenticateResponse:
        return pb.AuthenticateResponse(user="u000001", subject="user:u000001", revision=1)

    async def PlanObjects(self, request: pb.PlanObjectsRequest, context: Any) -> pb.PlanObjectsResponse:
        return pb.PlanObjectsResponse(kind=pb.PlanObjectsResponse.Kind.ALL, revision=1)


def stop(proc: subprocess.Popen[Any], wait: float) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``wait`` seconds."""
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def noop(auth: bool = False) -> None:
    interceptors = []
    if auth:  # the same caller authentication the full server runs, to price it
        from orgauthz.api.auth import CallerAuthInterceptor

        interceptors.append(CallerAuthInterceptor(TOKEN))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], interceptors=interceptors)
    pb_grpc.add_AuthorizationServiceServicer_to_server(NoopServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await _until_signalled()
    await server.stop(0.5)


async def app(database_url: str, cache_entries: int, gc_freeze: bool = False, redis_url: str = "") -> None:
    from orgauthz.api.server import App
    from orgauthz.config import Settings

    settings = Settings(
        listen="127.0.0.1:0",
        metrics_listen="",
        database_url=database_url,
        redis_url=redis_url,
        auth_token=TOKEN,
        cache_max_entries=cache_entries,
        log_level="WARNING",
    )
    a = App(settings)
    await a.start()
    if gc_freeze:
        import gc

        gc.freeze()
    print(f"PORT {a.port}", flush=True)
    await _until_signalled()
    await a.stop(0.5)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["noop", "app"])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--redis-url", default="", help="app: Redis for the shared cache and change notifications")
    ap.add_argument("--auth", action="store_true", help="noop: with the caller authentication interceptor")
    ap.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up (experiments)")
    ap.add_argument("--switch-interval", type=float, default=0.0, help="sys.setswitchinterval (experiments)")
    ap.add_argument("--cache-entries", type=int, default=1_000_000)
    opts = ap.parse_args()
    if opts.switch_interval:
        import sys

        sys.setswitchinterval(opts.switch_interval)
    if opts.kind == "noop":
        asyncio.run(noop(opts.auth))
    else:
        import logging

        logging.basicConfig(level=logging.WARNING)
        asyncio.run(app(opts.database_url, opts.cache_entries, opts.gc_freeze, opts.redis_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
