"""The Redis decision tier shared by replicas, and the one place Redis failures are handled.

:class:`RedisLink` owns the client. Every Redis call in orgauthz goes through it: a
failure (refused connection, timeout, any ``RedisError``) is logged once, counted, and
turns the link *down*; while down, no call reaches the network (a lookup is a counted
miss, a write is dropped) and a probe pings Redis until it answers again. Nothing here
ever raises to a caller and nothing here ever answers "allow" on its own.

:class:`RedisDecisionCache` stores decisions in one hash per organization revision::

    orgauthz:d:<policy digest>:<org>:<org revision>   field "<subject>|<domain>|<scope>" -> "1"/"0"

Keys carry the revision, so a change to an organization makes its old entries
unreachable (they expire with their TTL) and leaves every other organization's entries
valid. The policy digest keeps replicas running different ``policies/`` from sharing
answers. Denials are cached like allows. Writes are batched by a background flush, off
the response path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from orgauthz.domain import lines as L
from orgauthz.domain.policy import PolicySet

log = logging.getLogger(__name__)

KEY_PREFIX = "orgauthz:d"
_FAILURES = (RedisError, OSError, asyncio.TimeoutError, ConnectionError)


def policy_digest(policy: PolicySet) -> str:
    """A short hash of everything besides the store that decides: model, roles, includes."""
    h = hashlib.sha256(policy.model_text.encode())
    for line in sorted(L.builtin_policy_lines(policy) + L.include_lines(policy)):
        h.update("\x1f".join(line).encode() + b"\n")
    return h.hexdigest()[:12]


class RedisLink:
    """One Redis client and whether Redis is currently usable."""

    def __init__(self, url: str, *, timeout_s: float = 0.25, probe_interval_s: float = 0.5) -> None:
        self.url = url
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # A failed call is a miss at once; reconnection is the probe's job, not a retry's.
            retry=Retry(NoBackoff(), 0),
            max_connections=64,
        )
        self.probe_interval_s = probe_interval_s
        self.available = True
        self.errors = 0
        self.down_since = 0.0
        self._probe: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.available

    def failed(self, what: str, exc: BaseException) -> None:
        """Records a failed call; the link is down until a probe succeeds."""
        self.errors += 1
        if self.available:
            self.available = False
            self.down_since = time.monotonic()
            log.warning("redis unavailable (%s: %s): decisions continue from memory", what, type(exc).__name__)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._reconnect(), name="orgauthz-redis-probe")

    async def _reconnect(self) -> None:
        while not self.available:
            await asyncio.sleep(self.probe_interval_s)
            try:
                await self.client.ping()
            except _FAILURES:
                self.errors += 1
                continue
            self.available = True
            log.warning("redis reachable again after %.1f s", time.monotonic() - self.down_since)

    async def call(self, what: str, coro: Any) -> Any:
        """Awaits a Redis command; None (and the link down) on any failure."""
        try:
            return await coro
        except _FAILURES as exc:
            self.failed(what, exc)
            return None

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        with contextlib.suppress(*_FAILURES):
            await self.client.aclose()


class RedisDecisionCache:
    """Decisions shared by replicas. ``get`` returns None on a miss, and on any failure."""

    def __init__(
        self, link: RedisLink, *, digest: str, ttl_s: int = 600, flush_delay_s: float = 0.002, max_pending: int = 50_000
    ) -> None:
        self.link = link
        self.digest = digest
        self.ttl_s = ttl_s
        self.flush_delay_s = flush_delay_s
        self.max_pending = max_pending
        self._pending: dict[str, dict[str, str]] = {}
        self._npending = 0
        self._flusher: asyncio.Task[None] | None = None
        self.hits = 0
        self.misses = 0
        self.failures = 0  # lookups answered "miss" because Redis failed or is down
        self.writes = 0
        self.dropped = 0  # writes not sent: Redis down or the queue full

    def hash_key(self, org_id: str, org_revision: int) -> str:
        return f"{KEY_PREFIX}:{self.digest}:{org_id}:{org_revision}"

    @staticmethod
    def field(subject: str, domain: str, scope: str) -> str:
        return f"{subject}|{domain}|{scope}"

    async def get(self, org_id: str, org_revision: int, subject: str, domain: str, scope: str) -> bool | None:
        link = self.link
        if not link.available:
            self.failures += 1
            return None
        try:
            value = await link.client.hget(self.hash_key(org_id, org_revision), self.field(subject, domain, scope))
        except _FAILURES as exc:
            link.failed("get", exc)
            self.failures += 1
            return None
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return value == b"1"

    def put(self, org_id: str, org_revision: int, subject: str, domain: str, scope: str, allowed: bool) -> None:
        """Queues the decision; a background flush sends queued decisions in one pipeline."""
        if not self.link.available or self._npending >= self.max_pending:
            self.dropped += 1
            return
        bucket = self._pending.setdefault(self.hash_key(org_id, org_revision), {})
        bucket[self.field(subject, domain, scope)] = "1" if allowed else "0"
        self._npending += 1
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_delay_s)
        self._flusher = None  # decisions queued from now on schedule the next flush
        await self.flush()

    async def flush(self) -> None:
        """Sends every queued decision now (tests and shutdown call it)."""
        pending, count = self._pending, self._npending
        self._pending, self._npending = {}, 0
        if not pending:
            return
        if not self.link.available:
            self.dropped += count
            return
        pipe = self.link.client.pipeline(transaction=False)
        for key, fields in pending.items():
            pipe.hset(key, mapping=cast("Mapping[Any, Any]", fields))  # Mapping's key type is invariant
            pipe.expire(key, self.ttl_s)
        try:
            await pipe.execute()
        except _FAILURES as exc:
            self.link.failed("put", exc)
            self.dropped += count
            return
        self.writes += count

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
