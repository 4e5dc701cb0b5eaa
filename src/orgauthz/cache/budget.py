"""How many more decisions one replica may add to Redis: the total bound of SPEC §3.

Every field a replica adds to a decision hash is gone at most one TTL after Redis added
it: a hash gets its TTL once, when it is created, and no later write extends it
(:mod:`orgauthz.cache.redis`). So the fields a replica added during the last TTL bound
how many of its fields Redis can still hold. :class:`FieldBudget` counts them in buckets
a tenth of the TTL wide and forgets a bucket once every field in it has expired.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

_BUCKETS: Final = 10  # per TTL: a bucket is forgotten at most a tenth of a TTL late


class FieldBudget:
    """At most ``limit`` fields added within any one TTL, hence at most ``limit`` in Redis."""

    def __init__(self, limit: int, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(0, limit)
        self.ttl_s = ttl_s
        self._width = ttl_s / _BUCKETS
        self._clock = clock
        self._buckets: deque[tuple[float, int]] = deque()  # (first addition, fields added)
        self._spent = 0

    def room(self) -> int:
        """How many fields may be added now."""
        now, buckets = self._clock(), self._buckets
        # A bucket's fields were all added before start + width: all gone by start + width + TTL.
        while buckets and buckets[0][0] + self._width + self.ttl_s <= now:
            self._spent -= buckets.popleft()[1]
        return max(0, self.limit - self._spent)

    def spend(self, fields: int) -> None:
        """Counts ``fields`` as added now. Call it once Redis has answered: whatever the
        answer, Redis added them no later than that."""
        if fields <= 0:
            return
        now, buckets = self._clock(), self._buckets
        if buckets and now < buckets[-1][0] + self._width:
            start, spent = buckets.pop()
            buckets.append((start, spent + fields))
        else:
            buckets.append((now, fields))
        self._spent += fields
