"""Service accounts and their API keys (R10-R14).

A service account is a subject ``service_account:<id>`` of one organization, holding the
Member role or a custom organization role, never Admin (R11). Its API key is shown once,
at creation or rotation (R12); the store keeps only the key's SHA-256 and a masked form.

A key works while it is neither expired (``expires_at``) nor revoked: ``revoked_at`` is the
moment a key stops working, set by a rotation to the end of its grace period (at most
48 hours, default now, R13). Deleting a service account deletes its keys, its membership
and its workspace grants in one write, so the next Check and the next Authenticate deny.

A rotation and a deletion name the account in their change set (``ChangeSet.keys``), so
every replica drops what it remembers of the account's keys when it applies the change
(:mod:`orgauthz.services.api_keys` resolves keys, R14).
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import ORGANIZATION
from orgauthz.errors import AlreadyExists, InvalidArgument, NotFound
from orgauthz.services import secrets as sec
from orgauthz.services.access import removal, removal_reads
from orgauthz.services.api_keys import works
from orgauthz.services.context import Actor, Authority, Management, audit
from orgauthz.services.roles import check_role_row, role_read, role_scopes
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, as_utc, utcnow
from orgauthz.store.models import ApiKey, Organization, ServiceAccount

GRACE_MAX_S = 48 * 3600
KEY_TTL_MAX_S = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class KeyView:
    id: str
    masked: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


@dataclass(frozen=True)
class ServiceAccountView:
    id: str
    org_id: str
    name: str
    org_role: str
    created_at: datetime
    keys: list[KeyView] = field(default_factory=list)


@dataclass(frozen=True)
class IssuedKey:
    """A key as shown once: the only place the plaintext exists."""

    api_key: str
    expires_at: datetime | None


@dataclass(frozen=True)
class _NewKey:
    """A key made before its write (``decide`` stays pure): its plaintext and stored forms."""

    id: str
    api_key: str
    key_hash: str
    masked: str

    @classmethod
    def make(cls) -> _NewKey:
        key = sec.new_api_key()
        return cls(id=f"key-{_secrets.token_hex(10)}", api_key=key, key_hash=sec.digest(key), masked=sec.mask(key))


def _key_view(k: Any, now: datetime) -> KeyView:
    """``k``: an ApiKey, or a row with its id, masked, created_at, expires_at and revoked_at."""
    return KeyView(
        id=k.id,
        masked=k.masked,
        created_at=as_utc(k.created_at),
        expires_at=as_utc(k.expires_at) if k.expires_at else None,
        revoked_at=as_utc(k.revoked_at) if k.revoked_at else None,
        active=works(k.expires_at, k.revoked_at, now),
    )


def _account_view(sa: Any, sa_id: str, keys: Iterable[Any], now: datetime) -> ServiceAccountView:
    """The account (an ORM row or a read row) with its keys that still work, newest first
    (``created_at`` descending, then ``id``)."""
    views = sorted((_key_view(k, now) for k in keys), key=lambda v: v.id)
    views.sort(key=lambda v: v.created_at, reverse=True)  # stable: ties stay in id order
    return ServiceAccountView(
        id=sa_id,
        org_id=sa.org_id,
        name=sa.name,
        org_role=sa.org_role,
        created_at=as_utc(sa.created_at),
        keys=[v for v in views if v.active],
    )


def _view(s: Session, sa: ServiceAccount, now: datetime) -> ServiceAccountView:
    """The account with its keys that still work, newest first (reads outside writes)."""
    return _account_view(sa, sa.id, s.scalars(select(ApiKey).where(ApiKey.service_account_id == sa.id)), now)


def check_key_ttl(field_name: str, seconds: int) -> int:
    """0: never expires; otherwise 1 s to 10 years."""
    if seconds < 0 or seconds > KEY_TTL_MAX_S:
        raise InvalidArgument(field_name, f"must be 0 (never expires) or at most {KEY_TTL_MAX_S} seconds")
    return seconds


def check_grace(field_name: str, seconds: int) -> int:
    """0 (default: the old key stops at once) to 48 hours (R13)."""
    if seconds < 0 or seconds > GRACE_MAX_S:
        raise InvalidArgument(field_name, f"must be between 0 and {GRACE_MAX_S} seconds (48 hours)")
    return seconds


# What the writes read under the write lock, built once with bindparams.
# Create: the organization's limit (R10), its count of service accounts, and whether the id
# or the name (in the organization, R11) is taken; no row: no organization.
_CREATE_CHECKS = select(
    Organization.max_service_accounts,
    select(func.count())
    .select_from(ServiceAccount)
    .where(ServiceAccount.org_id == bindparam("org"))
    .scalar_subquery()
    .label("service_accounts"),
    exists().where(ServiceAccount.id == bindparam("sa")).label("id_taken"),
    exists()
    .where(ServiceAccount.org_id == bindparam("org"), ServiceAccount.name == bindparam("name"))
    .label("name_taken"),
).where(Organization.id == bindparam("org"))
# Rotate and delete: the account (no row: none of that id) and its keys.
_ACCOUNT = select(ServiceAccount.org_id, ServiceAccount.name, ServiceAccount.org_role, ServiceAccount.created_at).where(
    ServiceAccount.id == bindparam("sa")
)
_KEYS = select(ApiKey.id, ApiKey.masked, ApiKey.created_at, ApiKey.expires_at, ApiKey.revoked_at).where(
    ApiKey.service_account_id == bindparam("sa")
)
# Update: the account holding a name in the organization (R11), if any.
_NAME_HOLDER = select(ServiceAccount.id).where(
    ServiceAccount.org_id == bindparam("org"), ServiceAccount.name == bindparam("name")
)


def _account_reads(sa_id: str) -> dict[str, Read]:
    return {"account": (_ACCOUNT, {"sa": sa_id}), "keys": (_KEYS, {"sa": sa_id})}


def _account(at: Locked, org_id: str, sa_id: str) -> Any:
    """The account read under the lock; NotFound when it is not one of the organization's."""
    sa = at.one("account")
    if sa is None or sa.org_id != org_id:
        raise NotFound(f"service account {sa_id!r} not found")
    return sa


def _issue(at: Locked, sa_id: str, org_id: str, new: _NewKey, ttl_s: int) -> tuple[IssuedKey, ApiKey, store.Write]:
    """The new key as shown once, as stored (for the answer) and its insert."""
    expires = at.now + timedelta(seconds=ttl_s) if ttl_s else None
    row = {
        "id": new.id,
        "service_account_id": sa_id,
        "org_id": org_id,
        "key_hash": new.key_hash,
        "masked": new.masked,
        "expires_at": expires,
        "revoked_at": None,
        "created_at": at.now,
    }
    return IssuedKey(api_key=new.api_key, expires_at=expires), ApiKey(**row), store.insert(ApiKey, row)


async def create_service_account(
    mgmt: Management, actor: Actor, org_id: str, *, sa_id: str, name: str, role: str, key_ttl_s: int
) -> tuple[ServiceAccountView, IssuedKey, int]:
    """Needs create:service_account. Returns the account, its key (shown once) and the revision.

    InvalidArgument for Admin or an unknown role; AlreadyExists for a taken id or a name
    taken in the organization; LimitExceeded at ``max_service_accounts`` (counted under the
    write lock, so racing creates never exceed it).
    """
    await mgmt.require(actor, org_id, "create:bot")
    authority = await mgmt.authority(actor, org_id)
    role = role or rules.MEMBER
    sa_id = sa_id or f"sa-{_secrets.token_hex(8)}"
    new = _NewKey.make()
    reads: dict[str, Read] = {
        "checks": (_CREATE_CHECKS, {"org": org_id, "sa": sa_id, "name": name}),
        "role": role_read(role),
    }

    def decide(at: Locked) -> Decision[tuple[ServiceAccountView, IssuedKey]]:
        checks = at.one("checks")
        if checks is None:
            raise NotFound(f"organization {org_id!r} not found")
        rules.check_service_account_role("org_role", role)
        check_role_row(mgmt.policy, org_id, role, ORGANIZATION, "org_role", at.one("role"))
        _check_role_within(mgmt, authority, role, at.one("role"))
        if checks.id_taken:
            raise AlreadyExists(f"service account id {sa_id!r} is taken")
        if checks.name_taken:
            raise AlreadyExists(f"a service account named {name!r} already exists in the organization")
        rules.check_limit(
            "service accounts", used=int(checks.service_accounts), adding=1, limit=checks.max_service_accounts
        )
        sa = {"id": sa_id, "org_id": org_id, "name": name, "org_role": role, "created_at": at.now}
        issued, key, insert_key = _issue(at, sa_id, org_id, new, key_ttl_s)
        event = audit(
            actor,
            "orgauthz.service-account.created",
            f"service_account:{sa_id}",
            details={
                "name": name,
                "org_role": role,
                "key_expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            },
        )
        return Decision(
            (_account_view(ServiceAccount(**sa), sa_id, [key], at.now), issued),
            writes=[store.insert(ServiceAccount, sa), insert_key],  # the account first: keys reference it
            audits=[event],
            change=at.change(add=L.membership_lines(f"service_account:{sa_id}", org_id, role)),
        )

    (shown, issued), revision = await mgmt.write(org_id, "service-account.created", reads, decide)
    return shown, issued, revision


async def _find(mgmt: Management, actor: Actor, org_id: str, sa_id: str, permission: str) -> None:
    await mgmt.require(actor, org_id, permission)
    found = await mgmt.read(lambda s: s.scalar(select(ServiceAccount.org_id).where(ServiceAccount.id == sa_id)))
    if found != org_id:
        raise NotFound(f"service account {sa_id!r} not found")


async def get_service_account(mgmt: Management, actor: Actor, org_id: str, sa_id: str) -> ServiceAccountView:
    """Needs read:service_account; keys masked."""
    await _find(mgmt, actor, org_id, sa_id, "read:bot")

    def read(s: Session) -> ServiceAccountView:
        sa = s.get(ServiceAccount, sa_id)
        if sa is None:
            raise NotFound(f"service account {sa_id!r} not found")
        return _view(s, sa, utcnow())

    return await mgmt.read(read)


async def list_service_accounts(
    mgmt: Management, actor: Actor, org_id: str, *, page_size: int, after: str
) -> tuple[list[ServiceAccountView], str]:
    """Ordered by id; needs read:service_account; keys masked."""
    await mgmt.require(actor, org_id, "read:bot")

    def read(s: Session) -> tuple[list[ServiceAccountView], str]:
        q = select(ServiceAccount).where(ServiceAccount.org_id == org_id)
        if after:
            q = q.where(ServiceAccount.id > after)
        rows = list(s.scalars(q.order_by(ServiceAccount.id).limit(page_size + 1)))
        token = rows[page_size - 1].id if len(rows) > page_size else ""
        now = utcnow()
        return [_view(s, sa, now) for sa in rows[:page_size]], token

    return await mgmt.read(read)


async def rotate_key(
    mgmt: Management, actor: Actor, org_id: str, sa_id: str, *, key_ttl_s: int, grace_s: int
) -> tuple[ServiceAccountView, IssuedKey, int]:
    """A new key; every older key stops working after ``grace_s`` (0: at once) (R13).

    Needs update:service_account. A grace period never extends an older key beyond its
    own expiry or an earlier revocation.
    """
    await _find(mgmt, actor, org_id, sa_id, "update:bot")
    new = _NewKey.make()

    def decide(at: Locked) -> Decision[tuple[ServiceAccountView, IssuedKey]]:
        sa = _account(at, org_id, sa_id)
        stop_at = at.now + timedelta(seconds=grace_s)
        writes: list[store.Write] = []
        keys: list[Any] = []
        for old in at["keys"]:
            if old.revoked_at is None or as_utc(old.revoked_at) > stop_at:
                writes.append(store.update(ApiKey, {"id": old.id}, revoked_at=stop_at))
                keys.append(ApiKey(**{**old._asdict(), "revoked_at": stop_at}))
            else:
                keys.append(old)
        issued, key, insert_key = _issue(at, sa_id, org_id, new, key_ttl_s)
        writes.append(insert_key)
        event = audit(
            actor,
            "orgauthz.api-key.rotated",
            f"service_account:{sa_id}",
            details={
                "grace_period_s": grace_s,
                "key_expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            },
        )
        # No Casbin line changes; replicas drop what they remember of the account's keys.
        return Decision(
            (_account_view(sa, sa_id, [*keys, key], at.now), issued),
            writes=writes,
            audits=[event],
            change=at.change(keys=[f"service_account:{sa_id}"]),
        )

    reads = _account_reads(sa_id)
    (shown, issued), revision = await mgmt.write(org_id, "api-key.rotated", reads, decide)
    return shown, issued, revision


def _check_role_within(mgmt: Management, authority: Authority, role: str, row: Any | None) -> None:
    """No escalation through a service account (R28, R11): whoever is not an organization
    Owner or Admin gives an account only a role whose permissions it holds itself; the key
    would otherwise act with more than its creator may."""
    rules.check_no_escalation(
        actor_is_admin=authority.is_admin,
        actor_scopes=authority.scopes,
        role_scopes=role_scopes(mgmt.policy, ORGANIZATION, role, row),
        own_access=False,
        what="give a service account",
    )


async def update_service_account(
    mgmt: Management, actor: Actor, org_id: str, sa_id: str, *, name: str, role: str
) -> tuple[ServiceAccountView, int]:
    """Changes the name and organization role (R11); empty keeps a value. Returns the account
    (keys masked) and the revision. Needs update:service_account.

    InvalidArgument naming ``org_role`` for Owner, Admin or an unknown role; AlreadyExists
    naming ``name`` when another account of the organization holds the name. A changed role
    replaces the account's role line in the same write, so the next Check reflects it.
    """
    await _find(mgmt, actor, org_id, sa_id, "update:bot")
    authority = await mgmt.authority(actor, org_id)
    if role:
        rules.check_service_account_role("org_role", role)
    reads: dict[str, Read] = {**_account_reads(sa_id), "name": (_NAME_HOLDER, {"org": org_id, "name": name})}
    if role:
        reads["role"] = role_read(role)

    def decide(at: Locked) -> Decision[ServiceAccountView]:
        sa = _account(at, org_id, sa_id)
        if role:
            check_role_row(mgmt.policy, org_id, role, ORGANIZATION, "org_role", at.one("role"))
            _check_role_within(mgmt, authority, role, at.one("role"))
        holder = at.one("name")
        if name and holder is not None and holder.id != sa_id:
            raise AlreadyExists(f"name: a service account named {name!r} already exists in the organization")
        before = {"name": sa.name, "org_role": sa.org_role}
        after = {"name": name or sa.name, "org_role": role or sa.org_role}
        subject = f"service_account:{sa_id}"
        updated = ServiceAccount(id=sa_id, org_id=org_id, created_at=sa.created_at, **after)
        decision = Decision(
            _account_view(updated, sa_id, at["keys"], at.now),
            audits=[audit(actor, "orgauthz.service-account.updated", subject, details={"from": before, "to": after})],
        )
        changed = {k: v for k, v in after.items() if v != before[k]}
        if changed:
            decision.writes.append(store.update(ServiceAccount, {"id": sa_id}, **changed))
        if "org_role" in changed:
            decision.change = at.change(
                remove=L.membership_lines(subject, org_id, before["org_role"])[:1],
                add=L.membership_lines(subject, org_id, after["org_role"])[:1],
            )
        return decision

    return await mgmt.write(org_id, "service-account.updated", reads, decide)


async def delete_service_account(mgmt: Management, actor: Actor, org_id: str, sa_id: str) -> int:
    """Deletes the account, its keys, membership and workspace grants in one write (R13)."""
    await _find(mgmt, actor, org_id, sa_id, "delete:bot")
    subject = f"service_account:{sa_id}"
    reads = {**_account_reads(sa_id), **removal_reads(org_id, subject)}

    def decide(at: Locked) -> Decision[None]:
        sa = _account(at, org_id, sa_id)
        writes, lines = removal(mgmt.policy, at, org_id, subject, sa.org_role)
        details = {"name": sa.name, "grants_removed": len(at["grants"]), "keys_revoked": len(at["keys"])}
        return Decision(
            None,
            # Children first: the keys reference the account.
            writes=[*writes, store.delete(ApiKey, service_account_id=sa_id), store.delete(ServiceAccount, id=sa_id)],
            audits=[audit(actor, "orgauthz.service-account.deleted", subject, details=details)],
            change=at.change(remove=lines, keys=[subject]),
        )

    _, revision = await mgmt.write(org_id, "service-account.deleted", reads, decide)
    return revision
