"""The Redis decision tier shared by replicas, and the one place Redis failures are handled.

:class:`RedisLink` owns the client. Every Redis call in orgauthz goes through it: a
failure (refused connection, timeout, any ``RedisError``) is a miss, counted and logged
once. A timeout is not an outage: the link goes *down* when Redis refused the connection or
failures went on for a second with no answer from Redis in between (it pings Redis after
a failure). While down, no call reaches the network (a lookup is a counted miss, a write
is dropped) and a probe pings Redis until it answers again. Nothing here ever raises to a
caller and nothing here ever answers "allow" on its own.

:class:`RedisDecisionCache` stores decisions in one hash per organization revision::

    orgauthz:d:<policy digest>:<org>:<org revision>   field "<subject>|<domain>|<scope>" -> "1"/"0"

Keys carry the revision, so a change to an organization makes its old entries
unreachable (they expire with their TTL) and leaves every other organization's entries
valid. The policy digest keeps replicas running different ``policies/`` from sharing
answers. Denials are cached like allows, for subjects the organization knows (the caller,
:class:`~orgauthz.engine.redis_authorizer.RedisCachingAuthorizer`, writes nothing about
the others). Writes are batched by a background flush, off the response path.

Everything written is bounded (SPEC §3): a hash holds at most ``max_fields_per_revision``
fields, after which its new decisions are not written; it gets its TTL once, when it is
created, so no later write extends it; and one replica adds at most ``max_fields`` fields
within any one TTL (:class:`~orgauthz.cache.budget.FieldBudget`), so at most that many of
its fields are in Redis at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from orgauthz.cache.budget import FieldBudget
from orgauthz.domain import lines as L
from orgauthz.domain.policy import PolicySet

if TYPE_CHECKING:
    from orgauthz.engine.authorizer import DecisionKey

log = logging.getLogger(__name__)

KEY_PREFIX = "orgauthz:d"
_FAILURES = (RedisError, OSError, asyncio.TimeoutError, ConnectionError)
_FULL_MAX = 4096  # hashes remembered as full; all forgotten at once when more fill up

# One organization revision's queued decisions, added while its hash has room: the bound
# holds however many replicas write the hash at once (a script runs alone). A field already
# there keeps its value (a value is a function of its key). The TTL is set only on a hash
# that has none, so later writes never extend it (EXPIRE NX would need Redis 7.0).
# ARGV: most fields, TTL, then field, value pairs. Returns the pairs gone through (the rest
# found the hash full), the fields added, and the room left.
_WRITE = """
local room = tonumber(ARGV[1]) - redis.call('HLEN', KEYS[1])
local seen, added = 0, 0
for i = 3, #ARGV, 2 do
  if added >= room then break end
  added = added + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  seen = seen + 1
end
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {seen, added, room - added}
"""


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _refused(exc: BaseException) -> bool:
    """Whether the failure is a refused connection: nothing listens at Redis's address."""
    seen: BaseException | None = exc
    for _ in range(5):  # redis-py wraps the OSError (as cause or context)
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def policy_digest(policy: PolicySet) -> str:
    """A short hash of everything besides the store that decides: model, roles, includes."""
    h = hashlib.sha256(policy.model_text.encode())
    for line in sorted(L.builtin_policy_lines(policy) + L.include_lines(policy)):
        h.update("\x1f".join(line).encode() + b"\n")
    return h.hexdigest()[:12]


class RedisLink:
    """One Redis client and whether Redis is currently usable.

    A failed call is counted; it takes the link down only as part of an outage: Redis
    refused the connection (nothing listens there), or failures went on for ``down_after_s``
    with no answer from Redis in between. One slow command with Redis healthy is only
    counted: after a failure the link pings Redis at once, and the first answer (a ping, or
    any call through :meth:`call`) ends the run of failures. While down, no call reaches
    the network and the link pings every ``probe_interval_s`` until Redis answers."""

    def __init__(
        self, url: str, *, timeout_s: float = 0.25, probe_interval_s: float = 0.5, down_after_s: float = 1.0
    ) -> None:
        self.url = url
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # A failed call is a miss at once; checking on Redis is the probe's job, not a retry's.
            retry=Retry(NoBackoff(), 0),
            max_connections=64,
        )
        self.probe_interval_s = probe_interval_s
        self.down_after_s = down_after_s
        self.available = True
        self.errors = 0
        self.failing_since = 0.0  # when the current run of failures began; 0: Redis answered since
        self.down_since = 0.0
        self._probe: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.available

    def failed(self, what: str, exc: BaseException) -> None:
        """Counts a failed call. The link goes down when Redis refused the connection or the
        run of failures this one belongs to has lasted ``down_after_s``; otherwise it stays
        up and the probe asks Redis whether it answers."""
        self.errors += 1
        now = time.monotonic()
        if not self.failing_since:
            self.failing_since = now
            if self.available:
                log.info("redis %s failed (%s): counted; the link stays up while Redis answers", what, _name(exc))
        if self.available and (_refused(exc) or now - self.failing_since >= self.down_after_s):
            self.available = False
            self.down_since = now
            log.warning("redis unavailable (%s: %s): decisions continue from memory", what, _name(exc))
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._watch(), name="orgauthz-redis-probe")

    def answered(self) -> None:
        """Redis answered a call: the run of failures, if any, is over."""
        self.failing_since = 0.0

    async def _watch(self) -> None:
        """Pings Redis while failures are unresolved: at once after the first, then every
        ``probe_interval_s``. An answer ends the run and brings a link that was down back up."""
        first = True
        while self.failing_since or not self.available:
            if not first:
                await asyncio.sleep(self.probe_interval_s)
            first = False
            try:
                await self.client.ping()
            except _FAILURES as exc:
                self.failed("ping", exc)
                continue
            self.answered()
            if not self.available:
                self.available = True
                log.warning("redis reachable again after %.1f s", time.monotonic() - self.down_since)

    async def call(self, what: str, coro: Any) -> Any:
        """Awaits a Redis command; None on any failure (counted, see :meth:`failed`)."""
        try:
            result = await coro
        except _FAILURES as exc:
            self.failed(what, exc)
            return None
        self.answered()
        return result

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
        self,
        link: RedisLink,
        *,
        digest: str,
        ttl_s: int = 600,
        max_fields_per_revision: int = 100_000,
        max_fields: int = 1_000_000,
        flush_delay_s: float = 0.002,
        max_pending: int = 50_000,
    ) -> None:
        self.link = link
        self.digest = digest
        self.ttl_s = ttl_s
        self.max_fields_per_revision = max_fields_per_revision
        self.budget = FieldBudget(max_fields, ttl_s)
        self.flush_delay_s = flush_delay_s
        self.max_pending = max_pending
        self._pending: dict[str, dict[str, str]] = {}
        self._npending = 0
        self._full: set[str] = set()  # hashes found full: their decisions are not queued
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # one flush at a time: the budget is read, then spent
        self.hits = 0
        self.misses = 0
        self.failures = 0  # lookups answered "miss" because Redis failed or is down
        self.writes = 0  # decisions sent and kept (added, or already there)
        self.dropped = 0  # writes not sent: Redis down or the queue full
        self.capped = 0  # writes refused: the hash full, or this replica's total reached

    def hash_key(self, key: DecisionKey) -> str:
        """The hash of the key's organization revision."""
        return f"{KEY_PREFIX}:{self.digest}:{key.org_id}:{key.revision}"

    @staticmethod
    def field(key: DecisionKey) -> str:
        base = f"{key.subject}|{key.domain}|{key.scope}"
        return f"{base}|{key.res}" if key.res else base

    async def get(self, key: DecisionKey) -> bool | None:
        link = self.link
        if not link.available:
            self.failures += 1
            return None
        try:
            value = await link.client.hget(self.hash_key(key), self.field(key))
        except _FAILURES as exc:
            link.failed("get", exc)
            self.failures += 1
            return None
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return value == b"1"

    def put(self, key: DecisionKey, allowed: bool) -> None:
        """Queues the decision; a background flush sends queued decisions in one pipeline."""
        if not self.link.available or self._npending >= self.max_pending:
            self.dropped += 1
            return
        hashed = self.hash_key(key)
        if hashed in self._full:
            self.capped += 1
            return
        bucket = self._pending.setdefault(hashed, {})
        bucket[self.field(key)] = "1" if allowed else "0"
        self._npending += 1
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_delay_s)
        self._flusher = None  # decisions queued from now on schedule the next flush
        await self.flush()

    async def flush(self) -> None:
        """Sends every queued decision now, after any flush still running (tests and
        shutdown call it)."""
        async with self._flushing:
            await self._send()

    async def _send(self) -> None:
        pending, count = self._pending, self._npending
        self._pending, self._npending = {}, 0
        if not pending:
            return
        if not self.link.available:
            self.dropped += count
            return
        room = self.budget.room()
        pipe = self.link.client.pipeline(transaction=False)
        sent: list[tuple[str, int]] = []
        total = 0
        for key, fields in pending.items():
            if total >= room:
                break
            pairs = list(itertools.islice(fields.items(), room - total))
            pipe.eval(_WRITE, 1, key, self.max_fields_per_revision, self.ttl_s, *itertools.chain(*pairs))
            sent.append((key, len(pairs)))
            total += len(pairs)
        self.capped += count - total
        if not sent:
            return
        try:
            answers = await pipe.execute()
        except _FAILURES as exc:
            self.link.failed("put", exc)
            self.dropped += total
            self.budget.spend(total)  # some may have been added before the failure
            return
        added = 0
        for (key, n), (seen, new, left) in zip(sent, answers, strict=True):
            self.writes += seen
            self.capped += n - seen
            added += new
            if left <= 0:
                if len(self._full) >= _FULL_MAX:
                    self._full.clear()
                self._full.add(key)
        self.budget.spend(added)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
