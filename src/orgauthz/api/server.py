"""Assembles the server: store, policies, engine, decision path, servicers, health.

:class:`App` is what ``orgauthz serve`` and the tests run. Health reports NOT_SERVING
under every name until the policies are loaded, the engine has read the store's index and
the change feed has applied the head revision found once the server listens (what committed
while it started); decisions wait for that too. Decisions stay
SERVING while a dependency is down; what is degraded is reported under its own service
name: ``orgauthz.v1.Store`` (the change feed cannot read the database) and
``orgauthz.v1.Cache`` (Redis unreachable; only registered when Redis is configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from orgauthz.api import auth, authorization, decoding, registry
from orgauthz.api.health import Health
from orgauthz.api.metrics import Metrics
from orgauthz.cache.keys import KeyCache
from orgauthz.cache.memory import MemoryCache
from orgauthz.config import Settings
from orgauthz.domain import routes
from orgauthz.domain.policy import PolicySet, load_policy
from orgauthz.engine.authorizer import CountingAuthorizer
from orgauthz.engine.decisions import Decisions
from orgauthz.engine.engine import Engine
from orgauthz.engine.feed import ChangeFeed
from orgauthz.engine.replication import Replication
from orgauthz.engine.siblings import Siblings, WorkerSlot
from orgauthz.services.api_keys import KeyAuthenticator
from orgauthz.services.context import Management
from orgauthz.services.http_gate import HttpGate
from orgauthz.services.outbox import Mail, OutboxSender
from orgauthz.store.base import Store
from orgauthz.store.db import open_store
from orgauthz.v1 import authorization_pb2

log = logging.getLogger(__name__)

SERVICE_NAMES = [authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name]
STORE_HEALTH = "orgauthz.v1.Store"
CACHE_HEALTH = "orgauthz.v1.Cache"


class _Services:
    """Where every service is added to ``server``: each of its methods answers a request that
    does not decode INVALID_ARGUMENT (:func:`~orgauthz.api.decoding.refusing_undecodable`), and
    only the services named in ``registered`` become registered methods.

    ``grpc.aio`` keeps one pending request per registered method and, for every call it
    accepts, waits on all of them (``asyncio.wait``: a done-callback added to and removed
    from each). With the management, health and reflection methods registered that was 43
    futures per wait instead of 6, and most of the CPU a cached Check cost over a no-op
    server. The other services are found by the generic lookup (a dict get per service)
    instead; only ``AuthorizationService`` is registered.

    The handlers are taken from the registration call, which gets the method dictionary.
    """

    def __init__(self, server: grpc.aio.Server, registered: Collection[str] = ()) -> None:
        self._server = server
        self._registered = frozenset(registered)
        self._pending: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Held: generated code passes the same handlers to :meth:`add_registered_method_handlers`
        next; one that never comes is registered as it is by :meth:`finish`."""
        for handler in handlers:
            name = getattr(handler, "service_name", lambda: None)()
            if name is None:
                self._server.add_generic_rpc_handlers((handler,))
            else:
                self._pending[name] = handler

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self._pending.pop(service_name, None)
        handlers = decoding.refusing_undecodable(method_handlers)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))
        if service_name in self._registered:
            self._server.add_registered_method_handlers(service_name, handlers)

    def finish(self) -> None:
        for name, handler in self._pending.items():
            log.warning("service %s added without its method dictionary: undecodable requests answer UNKNOWN", name)
            self._server.add_generic_rpc_handlers((handler,))
        self._pending.clear()


def unix_socket_path(listen: str) -> str | None:
    """The socket file of a ``unix:/path`` (or ``unix:///path``) listen address; None for host:port."""
    if not listen.startswith("unix:"):
        return None
    path = listen.removeprefix("unix:")
    return "/" + path.lstrip("/") if path.startswith("//") else path


def clear_stale_socket(path: str) -> None:
    """Removes a socket file left by a server that is gone (gRPC will not bind over it);
    RuntimeError when a server still answers there, or the path is not a socket."""
    if not os.path.exists(path):
        return
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        raise RuntimeError(f"cannot listen on unix:{path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
        return
    finally:
        probe.close()
    raise RuntimeError(f"cannot listen on unix:{path}: another server listens there")


@dataclass
class App:
    settings: Settings
    server: grpc.aio.Server | None = None
    port: int = 0
    metrics_port: int = 0
    db: Store | None = None
    engine: Engine | None = None
    feed: ChangeFeed | None = None
    decisions: Decisions | None = None
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    management: Management | None = None
    replication: Replication | None = None
    keys: KeyCache | None = None  # resolved API keys (R14)
    _watch: asyncio.Task[None] | None = None
    outbox: OutboxSender | None = None  # invitation email; only with smtp_host (R9)
    worker: WorkerSlot | None = None  # one of the workers of ``orgauthz serve --workers N``
    siblings: Siblings | None = None

    async def start(self) -> None:
        s = self.settings
        policy = load_policy(s.policy_dir)
        self.db = db = open_store(s.database_url)
        if s.migrate:
            await asyncio.to_thread(db.migrate)
        self.engine = engine = Engine(policy, db, max_loaded_orgs=s.max_loaded_orgs, gc_freeze=s.gc_freeze)
        await engine.start()
        self.feed = feed = ChangeFeed(engine, poll_interval=s.poll_interval_s, reload_after=s.feed_reload_after)
        cache = MemoryCache(s.cache_max_entries)
        self.replication, authorizer = Replication.build(s, engine, feed, cache)
        self.keys = keys = KeyCache(s.key_cache_max_entries)
        engine.watch(keys.applied)
        replication = self.replication
        self.metrics.bind_replication(
            lambda: {**replication.cache_counts(), ("api_keys", "hit"): keys.hits, ("api_keys", "miss"): keys.misses},
            lambda: feed.lag_revisions,
            feed.lag_seconds,
            lambda: engine.reloads,
        )
        if self.worker is not None:
            self.siblings = siblings = self._join_siblings(self.worker, engine, feed)
            self.metrics.bind_worker(self.worker.slot, lambda: siblings.sync_timeouts)
        counted = CountingAuthorizer(authorizer, self.metrics.decided)
        self.decisions = Decisions(engine, counted, feed, min_revision_wait=s.min_revision_wait_s)
        self.metrics.bind_gauges(lambda: engine.applied, lambda: engine.loads)

        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # Workers share the address; a lone server refuses one that is taken.
            ("grpc.so_reuseport", 1 if self.worker is not None else 0),
            *auth.server_options(),
        ]
        self.server = server = grpc.aio.server(options=options, interceptors=auth.interceptors_for(s))
        self.management = Management(store=db, engine=engine, feed=feed, policy=policy, mail=Mail.of(s))
        extra_names = [self._ext_authz_name()] if s.ext_authz else []
        services = _Services(server, registered=[*SERVICE_NAMES, *extra_names])
        authenticator = KeyAuthenticator(
            self.management, keys, applied=lambda: engine.applied, at_least=self.decisions.at_least
        )
        authorization.add_to_server(
            authorization.AuthorizationServicer(self.decisions, self.metrics, authenticator), services
        )
        if s.ext_authz:
            self._add_ext_authz(services, policy, authenticator)
        if s.smtp_host and not s.secret_key:
            raise ValueError(
                "ORGAUTHZ_SECRET_KEY (secret_key) is required when SMTP is configured: "
                "it seals queued invitation email, whose links hold one-time tokens"
            )
        if s.smtp_host:
            self.outbox = OutboxSender(db, s)
        registry.load_all()
        for registrar in registry.REGISTRARS:
            registrar(self, services, self.management)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, services)
        names = [
            *SERVICE_NAMES,
            *extra_names,
            *registry.SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        # What reflection.enable_server_reflection does for an aio server, through the wrapper.
        reflector = reflection.aio.ReflectionServicer(names)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflector, services)
        services.finish()
        credentials = auth.server_credentials(s)
        socket_path = unix_socket_path(s.listen)
        if socket_path is not None:
            clear_stale_socket(socket_path)
        self.port = (
            server.add_secure_port(s.listen, credentials)
            if credentials is not None
            else server.add_insecure_port(s.listen)
        )
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {s.listen}")
        if socket_path is not None:
            os.chmod(socket_path, int(s.socket_mode, 8))  # before anyone can be served
        # The index was read first thing; what committed since is in the store, not in it.
        # Until the feed has applied the head found once the server listens, every name is
        # NOT_SERVING and decisions wait (Decisions.at_least): SPEC §3.
        names = ["", *SERVICE_NAMES, STORE_HEALTH, *([CACHE_HEALTH] if self.replication.cache_ok is not None else [])]
        for name in names:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.siblings is None:
            await server.start()
        feed.start()
        self.replication.start()
        if self.outbox is not None:
            self.outbox.start()
        if s.metrics_listen:
            self.metrics_port = self.metrics.serve(s.metrics_listen)
        head = await feed.catch_up()
        if self.siblings is not None:
            # A worker listens (is routed to, SO_REUSEPORT) only once caught up.
            await server.start()
            self.siblings.serving()
        for name in ["", *SERVICE_NAMES]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self._report_degradation({})
        self._watch = asyncio.create_task(self._watch_dependencies(), name="orgauthz-health")
        who = f"worker {self.worker.slot} " if self.worker is not None else ""
        log.info("orgauthz %sserving on %s (revision %d; head at start %d)", who, self.address, engine.applied, head)

    def _join_siblings(self, worker: WorkerSlot, engine: Engine, feed: ChangeFeed) -> Siblings:
        """Wires this worker to the others (:mod:`orgauthz.engine.siblings`): its commits
        nudge them, its applied revision is on the board, and their nudges make it apply the
        carried change or poll."""
        siblings = Siblings(worker, sync_timeout=self.settings.worker_sync_timeout_s)
        feed.siblings = siblings
        engine.watch(lambda _revision, _change: siblings.applied(engine.applied))
        siblings.attach(feed, engine.applied)
        return siblings

    @staticmethod
    def _ext_authz_name() -> str:
        try:
            from orgauthz.api import ext_authz
        except ImportError as exc:  # xds-protos is an extra: a clear refusal, not a traceback
            raise RuntimeError(
                f"ext_authz is on but Envoy's stubs are not installed ({exc}); pip install 'orgauthz[envoy]'"
            ) from None
        return str(ext_authz.SERVICE_NAME)

    def _add_ext_authz(self, services: _Services, policy: PolicySet, keys: KeyAuthenticator) -> None:
        """Envoy's ``Authorization/Check`` on this server (docs/envoy.md). The proxy's subject
        header is trusted only when the interceptors authenticate every caller (shared secret or
        mTLS; :mod:`orgauthz.api.auth`), never in insecure development mode."""
        from orgauthz.api import ext_authz

        s = self.settings
        assert self.decisions is not None
        path = s.ext_authz_routes or policy.directory / routes.FILE_NAME
        table = routes.load_routes(path, policy)
        trusted = not s.insecure_dev
        if s.ext_authz_subject_header and not trusted:
            log.warning("ext_authz: %s is ignored: callers are not authenticated", s.ext_authz_subject_header)
        gate = HttpGate(
            table,
            self.decisions,
            keys,
            subject_header=s.ext_authz_subject_header,
            trust_subject_header=trusted,
        )
        ext_authz.add_to_server(gate, self.metrics, services)
        log.info("ext_authz: serving %s with %d routes from %s", ext_authz.SERVICE_NAME, len(table.routes), path)

    @property
    def address(self) -> str:
        """Where the server listens: ``host:port`` (the port bound), or ``unix:/path``."""
        if unix_socket_path(self.settings.listen) is not None:
            return self.settings.listen
        return f"{self.settings.listen.rpartition(':')[0]}:{self.port}"

    async def _watch_dependencies(self) -> None:
        """Keeps the Store/Cache health statuses and dependency error counters current."""
        seen: dict[str, int] = {}
        while True:
            await asyncio.sleep(0.25)
            try:
                await self._report_degradation(seen)
            except Exception:  # health reporting must never stop
                log.exception("health update failed")

    async def _report_degradation(self, seen: dict[str, int]) -> None:
        rep = self.replication
        if rep is None:
            return
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set(STORE_HEALTH, serving if rep.store_ok else not_serving)
        if rep.cache_ok is not None:
            await self.health.set(CACHE_HEALTH, serving if rep.cache_ok else not_serving)
        for dependency, count in rep.error_counts().items():
            if count > seen.get(dependency, 0):
                self.metrics.errors.labels(dependency).inc(count - seen.get(dependency, 0))
            seen[dependency] = count

    async def stop(self, grace: float = 1.0) -> None:
        server = self.server
        if self.siblings is not None:
            self.siblings.leaving()  # writes stop waiting for this worker
        await self.health.enter_graceful_shutdown()
        if self.siblings is not None and server is not None:
            # A worker stops listening first (new connections go to the others) and drains while
            # its feed still applies the others' writes, which its decisions wait for.
            await server.stop(grace)
            server = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.replication is not None:
            await self.replication.stop()
        if self.feed is not None:
            await self.feed.stop()
        if self.outbox is not None:
            await self.outbox.stop()
        if server is not None:
            await server.stop(grace)
        self.metrics.close()
        if self.siblings is not None:
            self.siblings.close()
        if self.engine is not None:
            await self.engine.close()
        if self.db is not None:
            await self.db.aclose()
            self.db.dispose()
