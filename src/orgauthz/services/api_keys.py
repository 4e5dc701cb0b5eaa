"""API keys resolved to who presents them (R14): a service account's ``pnb_`` or a user's ``pnu_``.

A malformed, unknown, expired or revoked key is :class:`Unauthenticated` with one message
(:data:`INVALID_KEY`); the key is never logged or echoed. A key is looked up by its SHA-256
and the stored hash compared in constant time.

Two ways to ask:

- :class:`KeyAuthenticator` answers ``AuthorizationService.Authenticate``, the hot path: a
  key resolved once is served from :class:`~orgauthz.cache.keys.KeyCache` (no database
  round trip when warm), with the expiry and revocation times checked against the clock at
  answer time. A change that ends a key drops it from the cache when the engine applies
  the change, so a revoke, rotation or deletion is never answered with the old identity on
  the writing replica once the write returned, nor on another once its change feed applied
  it; ``min_revision`` (as for Check) makes a replica wait for a given write first.
- :func:`authenticate_key` resolves the actor of a management call from the store every
  time: a management call reads the database anyway, and a key ended on any replica never
  acts again once the write committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from orgauthz.cache.keys import KeyCache, KeyEntry
from orgauthz.errors import Unauthenticated
from orgauthz.services import secrets as sec
from orgauthz.services.context import Actor, Management
from orgauthz.store.base import as_utc, utcnow
from orgauthz.store.models import ApiKey, UserApiKey

INVALID_KEY = "invalid API key"

# Each kind of key looked up by its hash: (hash, subject id, organization, expires, revoked).
_SERVICE_ACCOUNT_KEY = select(
    ApiKey.key_hash, ApiKey.service_account_id, ApiKey.org_id, ApiKey.expires_at, ApiKey.revoked_at
).where(ApiKey.key_hash == bindparam("hash"))
_USER_KEY = select(UserApiKey.key_hash, UserApiKey.user_id, UserApiKey.expires_at).where(
    UserApiKey.key_hash == bindparam("hash")
)


def works(expires_at: datetime | None, revoked_at: datetime | None, now: datetime) -> bool:
    """Whether a key with these times works at ``now``: neither expired nor revoked."""
    return (expires_at is None or as_utc(expires_at) > now) and (revoked_at is None or as_utc(revoked_at) > now)


@dataclass(frozen=True)
class Identity:
    """Who a key acts as, and the revision the answer reflects."""

    subject: str  # "user:<id>" or "service_account:<id>"
    org_id: str  # the service account's organization; "" for a user
    revision: int

    @property
    def id(self) -> str:
        return self.subject.partition(":")[2]


async def _read(mgmt: Management, api_key: str, revision: int) -> KeyEntry | None:
    """The stored key, or None when the key is malformed or unknown."""
    prefix = sec.key_prefix(api_key)
    if prefix is None:
        return None
    hashed = sec.digest(api_key)

    def read(s: Any) -> KeyEntry | None:
        if prefix == sec.USER_KEY_PREFIX:
            row = s.execute(_USER_KEY, {"hash": hashed}).first()
            if row is None:
                return None
            return KeyEntry(row.key_hash, f"user:{row.user_id}", "", row.expires_at, None, revision)
        row = s.execute(_SERVICE_ACCOUNT_KEY, {"hash": hashed}).first()
        if row is None:
            return None
        subject = f"service_account:{row.service_account_id}"
        return KeyEntry(row.key_hash, subject, row.org_id, row.expires_at, row.revoked_at, revision)

    entry = await mgmt.read(read)
    return entry if entry is not None and sec.same_hash(entry.key_hash, hashed) else None


def _usable(entry: KeyEntry | None) -> KeyEntry:
    if entry is None or not works(entry.expires_at, entry.revoked_at, utcnow()):
        raise Unauthenticated(INVALID_KEY)
    return entry


async def authenticate_key(mgmt: Management, api_key: str) -> Actor:
    """The actor of a management call presenting ``api_key``, read from the store: a service
    account of its organization, or a user (acting wherever the user is a member, R29).

    Raises Unauthenticated(:data:`INVALID_KEY`) for a malformed, unknown, expired or revoked key.
    """
    entry = _usable(await _read(mgmt, api_key, 0))
    return Actor(subject=entry.subject, org_id=entry.org_id, by_key=True)


class KeyAuthenticator:
    """What ``AuthorizationService.Authenticate`` calls (R14): served from memory when warm.

    ``applied`` is the engine's applied revision; ``at_least(revision)`` waits until this
    replica has applied ``revision`` (StaleRevision when it cannot in time), as for Check.
    """

    def __init__(
        self,
        mgmt: Management,
        cache: KeyCache,
        *,
        applied: Callable[[], int],
        at_least: Callable[[int], Awaitable[None]],
    ) -> None:
        self.mgmt = mgmt
        self.cache = cache
        self.applied = applied
        self.at_least = at_least

    async def authenticate(self, api_key: str, min_revision: int = 0) -> Identity:
        """Who ``api_key`` acts as. Raises Unauthenticated(:data:`INVALID_KEY`) for a malformed,
        unknown, expired or revoked key, and StaleRevision when ``min_revision`` is not reached."""
        if sec.key_prefix(api_key) is None:
            raise Unauthenticated(INVALID_KEY)
        await self.at_least(min_revision)  # immediate unless starting, behind min_revision or a sibling's write
        revision = self.applied()  # before the read: a change applied after it is newer
        hashed = sec.digest(api_key)
        entry = self.cache.get(hashed)
        if entry is None or not sec.same_hash(entry.key_hash, hashed):
            entry = await _read(self.mgmt, api_key, revision)
            if entry is not None:
                self.cache.put(entry)
        entry = _usable(entry)
        return Identity(entry.subject, entry.org_id, revision)
