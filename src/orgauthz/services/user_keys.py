"""Users' personal API keys (R29): create (shown once), list (masked), delete.

A user key is ``pnu_`` and a random body (:mod:`orgauthz.services.secrets`); the store keeps
its SHA-256 and a masked form. It acts as its user wherever the user is a member (R29): it
names no organization, so leaving or being removed from one leaves the key in place while
every Check for the user there is denied. Only the user themself, asserted as the actor by
the caller, manages their keys (:func:`~orgauthz.domain.rules.check_own_keys`), at most
:data:`~orgauthz.domain.rules.USER_KEYS_MAX` at once.

A user key belongs to no organization, so its writes are writes of no organization:
``mgmt.write("", ...)``. Each still takes the next global revision in the ``changes``
record, which every replica's change feed applies in order (a deletion names ``user:<id>``
in ``ChangeSet.keys``, so each replica drops the key from memory as it applies it), and moves
no organization's revision (no cached decision is orphaned). Its audit event
(``orgauthz.api-key.created`` / ``.deleted``, target ``user:<id>``) is stored with an empty
organization: the user's own record, listed by no organization's audit log.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from orgauthz.domain import rules
from orgauthz.errors import NotFound
from orgauthz.services import secrets as sec
from orgauthz.services.api_keys import works
from orgauthz.services.context import Actor, Management, audit
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, as_utc, utcnow
from orgauthz.store.models import UserApiKey

NO_ORGANIZATION = ""  # what user-key writes are committed under


@dataclass(frozen=True)
class UserKeyView:
    id: str
    user_id: str
    name: str
    masked: str
    created_at: datetime
    expires_at: datetime | None
    active: bool  # not expired


@dataclass(frozen=True)
class IssuedUserKey:
    """A key as shown once: the only place the plaintext exists."""

    api_key: str
    view: UserKeyView


def _view(k: Any, now: datetime) -> UserKeyView:
    """``k``: a UserApiKey or a row with its columns."""
    expires = as_utc(k.expires_at) if k.expires_at else None
    return UserKeyView(
        id=k.id,
        user_id=k.user_id,
        name=k.name,
        masked=k.masked,
        created_at=as_utc(k.created_at),
        expires_at=expires,
        active=works(expires, None, now),
    )


# What the writes read under the write lock, built once with bindparams.
_HELD = select(func.count().label("held")).select_from(UserApiKey).where(UserApiKey.user_id == bindparam("user"))
_KEY = select(UserApiKey.id, UserApiKey.user_id, UserApiKey.name).where(UserApiKey.id == bindparam("key"))


async def create_user_key(
    mgmt: Management, actor: Actor, user_id: str, *, name: str, ttl_s: int
) -> tuple[IssuedUserKey, int]:
    """A new key of ``user_id`` named ``name`` (names need not be unique), expiring after
    ``ttl_s`` seconds (0: never). Returns it, shown this once, and the revision.

    PermissionDenied unless the actor is the user, asserted (R29); LimitExceeded at
    :data:`~orgauthz.domain.rules.USER_KEYS_MAX` keys (counted under the write lock)."""
    rules.check_own_keys(actor=actor.subject, by_key=actor.by_key, user_id=user_id)
    api_key = sec.new_api_key(sec.USER_KEY_PREFIX)
    key_id = f"ukey-{_secrets.token_hex(10)}"
    reads: dict[str, Read] = {"held": (_HELD, {"user": user_id})}

    def decide(at: Locked) -> Decision[IssuedUserKey]:
        held = at.one("held")
        rules.check_user_key_count(int(held.held) if held is not None else 0)
        expires = at.now + timedelta(seconds=ttl_s) if ttl_s else None
        row = {
            "id": key_id,
            "user_id": user_id,
            "name": name,
            "key_hash": sec.digest(api_key),
            "masked": sec.mask(api_key),
            "expires_at": expires,
            "created_at": at.now,
        }
        event = audit(
            actor,
            "orgauthz.api-key.created",
            actor.subject,
            details={"key_id": key_id, "name": name, "expires_at": expires.isoformat() if expires else None},
        )
        return Decision(
            IssuedUserKey(api_key, _view(UserApiKey(**row), at.now)),
            writes=[store.insert(UserApiKey, row)],
            audits=[event],
        )

    return await mgmt.write(NO_ORGANIZATION, "user-key.created", reads, decide)


async def list_user_keys(
    mgmt: Management, actor: Actor, user_id: str, *, page_size: int, after: str
) -> tuple[list[UserKeyView], str]:
    """The user's keys, masked, ordered by id, expired ones included (``active`` false);
    the page token's key, or "" at the end. PermissionDenied unless the actor is the user."""
    rules.check_own_keys(actor=actor.subject, by_key=actor.by_key, user_id=user_id)

    def read(s: Session) -> tuple[list[UserKeyView], str]:
        q = select(UserApiKey).where(UserApiKey.user_id == user_id)
        if after:
            q = q.where(UserApiKey.id > after)
        rows = list(s.scalars(q.order_by(UserApiKey.id).limit(page_size + 1)))
        token = rows[page_size - 1].id if len(rows) > page_size else ""
        now = utcnow()
        return [_view(k, now) for k in rows[:page_size]], token

    return await mgmt.read(read)


async def delete_user_key(mgmt: Management, actor: Actor, user_id: str, key_id: str) -> int:
    """Deletes (revokes) one of the user's keys; returns the revision. On this replica the key
    stops working before this returns; on another, once its feed applied the revision.

    PermissionDenied unless the actor is the user; NotFound when the user holds no such key."""
    rules.check_own_keys(actor=actor.subject, by_key=actor.by_key, user_id=user_id)
    subject = f"user:{user_id}"

    def decide(at: Locked) -> Decision[None]:
        key = at.one("key")
        if key is None or key.user_id != user_id:
            raise NotFound(f"API key {key_id!r} not found")
        return Decision(
            None,
            writes=[store.delete(UserApiKey, id=key_id)],
            audits=[audit(actor, "orgauthz.api-key.deleted", subject, details={"key_id": key_id, "name": key.name})],
            change=at.change(keys=[subject]),
        )

    _, revision = await mgmt.write(NO_ORGANIZATION, "user-key.deleted", {"key": (_KEY, {"key": key_id})}, decide)
    return revision
