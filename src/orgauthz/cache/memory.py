"""The in-process decision cache: a bounded dict keyed by revision.

A key is a :class:`~orgauthz.engine.authorizer.DecisionKey` ``(org_id, org_revision,
subject, domain, scope)``. After any change to an
organization its revision grows, so entries computed before the change can no longer be
found: a revoke is never answered "allow" from this cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Final

Key = tuple[str, int, str, str, str, str]  # a DecisionKey (a named tuple)

_EVICT_FRACTION: Final = 0.1


class MemoryCache:
    """Bounded; when full, the oldest tenth of the entries is dropped (insertion order)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max(1, max_entries)
        self._data: dict[Key, bool] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> bool | None:
        """The cached decision, or None on a miss."""
        value = self._data.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def lookup(self) -> Callable[[Key], bool | None]:
        """The bare lookup, for a loop over many keys that counts with :meth:`counted`."""
        return self._data.get

    def counted(self, hits: int, misses: int) -> None:
        self.hits += hits
        self.misses += misses

    def put(self, key: Key, allowed: bool) -> None:
        data = self._data
        if len(data) >= self.max_entries:
            drop = max(1, int(self.max_entries * _EVICT_FRACTION))
            for old in list(itertools.islice(data, drop)):  # not a list of every key
                del data[old]
        data[key] = allowed

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
