"""Service accounts and their API keys (R10-R14).

A service account is a subject ``service_account:<id>`` of one organization, holding the
Member role or a custom organization role, never Admin (R11). Its API key is shown once,
at creation or rotation (R12); the store keeps only the key's SHA-256 and a masked form.

A key works while it is neither expired (``expires_at``) nor revoked: ``revoked_at`` is the
moment a key stops working, set by a rotation to the end of its grace period (at most
48 hours, default now, R13). Deleting a service account deletes its keys, its membership
and its workspace grants in one write, so the next Check and the next Authenticate deny.

:func:`authenticate_key` resolves a presented key to its actor (R14): a malformed, unknown,
expired or revoked key is :class:`Unauthenticated` with the same message, and the key
itself is never logged or echoed.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.policy import ORGANIZATION
from orgauthz.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from orgauthz.services import secrets as sec
from orgauthz.services.access import remove_from_organization
from orgauthz.services.context import Actor, Management
from orgauthz.services.roles import check_role
from orgauthz.store.db import Write, as_utc, utcnow
from orgauthz.store.models import ApiKey, Organization, ServiceAccount

GRACE_MAX_S = 48 * 3600
KEY_TTL_MAX_S = 10 * 365 * 24 * 3600
INVALID_KEY = "invalid API key"


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


def _works(expires_at: datetime | None, revoked_at: datetime | None, now: datetime) -> bool:
    return (expires_at is None or as_utc(expires_at) > now) and (revoked_at is None or as_utc(revoked_at) > now)


def _key_view(k: ApiKey, now: datetime) -> KeyView:
    return KeyView(
        id=k.id,
        masked=k.masked,
        created_at=as_utc(k.created_at),
        expires_at=as_utc(k.expires_at) if k.expires_at else None,
        revoked_at=as_utc(k.revoked_at) if k.revoked_at else None,
        active=_works(k.expires_at, k.revoked_at, now),
    )


def _view(s: Session, sa: ServiceAccount, now: datetime) -> ServiceAccountView:
    """The account with its keys that still work, newest first."""
    keys = s.scalars(
        select(ApiKey).where(ApiKey.service_account_id == sa.id).order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return ServiceAccountView(
        id=sa.id,
        org_id=sa.org_id,
        name=sa.name,
        org_role=sa.org_role,
        created_at=as_utc(sa.created_at),
        keys=[v for v in (_key_view(k, now) for k in keys) if v.active],
    )


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


def _check_sa_role(s: Session, mgmt: Management, org_id: str, role: str) -> None:
    rules.check_service_account_role("org_role", role)
    check_role(s, mgmt.policy, org_id, role, ORGANIZATION, "org_role")


def _new_key(w: Write, sa: ServiceAccount, ttl_s: int) -> IssuedKey:
    key = sec.new_api_key()
    expires = w.now + timedelta(seconds=ttl_s) if ttl_s else None
    w.session.add(
        ApiKey(
            id=f"key-{_secrets.token_hex(10)}",
            service_account_id=sa.id,
            org_id=sa.org_id,
            key_hash=sec.digest(key),
            masked=sec.mask(key),
            expires_at=expires,
            revoked_at=None,
            created_at=w.now,
        )
    )
    return IssuedKey(api_key=key, expires_at=expires)


async def create_service_account(
    mgmt: Management, actor: Actor, org_id: str, *, sa_id: str, name: str, role: str, key_ttl_s: int
) -> tuple[ServiceAccountView, IssuedKey, int]:
    """Needs create:service_account. Returns the account, its key (shown once) and the revision.

    InvalidArgument for Admin or an unknown role; AlreadyExists for a taken id or a name
    taken in the organization; LimitExceeded at ``max_service_accounts`` (counted under the
    write lock, so racing creates never exceed it).
    """
    await mgmt.require(actor, org_id, "create:service_account")
    role = role or rules.MEMBER
    sa_id = sa_id or f"sa-{_secrets.token_hex(8)}"

    def body(w: Write) -> tuple[ServiceAccountView, IssuedKey]:
        s = w.session
        org = s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id!r} not found")
        _check_sa_role(s, mgmt, org_id, role)
        if s.get(ServiceAccount, sa_id) is not None:
            raise AlreadyExists(f"service account id {sa_id!r} is taken")
        if s.scalar(select(ServiceAccount.id).where(ServiceAccount.org_id == org_id, ServiceAccount.name == name)):
            raise AlreadyExists(f"a service account named {name!r} already exists in the organization")
        count = int(
            s.scalar(select(func.count()).select_from(ServiceAccount).where(ServiceAccount.org_id == org_id)) or 0
        )
        rules.check_limit("service accounts", used=count, adding=1, limit=org.max_service_accounts)
        sa = ServiceAccount(id=sa_id, org_id=org_id, name=name, org_role=role, created_at=w.now)
        s.add(sa)
        s.flush()
        issued = _new_key(w, sa, key_ttl_s)
        s.flush()
        w.change.add.extend(L.membership_lines(f"service_account:{sa_id}", org_id, role))
        Management.audit(
            w,
            actor,
            "orgauthz.service-account.created",
            f"service_account:{sa_id}",
            details={
                "name": name,
                "org_role": role,
                "key_expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            },
        )
        return _view(s, sa, w.now), issued

    (shown, issued), revision = await mgmt.write(org_id, "service-account.created", body)
    return shown, issued, revision


async def _find(mgmt: Management, actor: Actor, org_id: str, sa_id: str, permission: str) -> None:
    await mgmt.require(actor, org_id, permission)
    found = await mgmt.read(lambda s: s.scalar(select(ServiceAccount.org_id).where(ServiceAccount.id == sa_id)))
    if found != org_id:
        raise NotFound(f"service account {sa_id!r} not found")


def _locked(w: Write, org_id: str, sa_id: str) -> ServiceAccount:
    sa = w.session.scalar(select(ServiceAccount).where(ServiceAccount.id == sa_id).with_for_update())
    if sa is None or sa.org_id != org_id:
        raise NotFound(f"service account {sa_id!r} not found")
    return sa


async def get_service_account(mgmt: Management, actor: Actor, org_id: str, sa_id: str) -> ServiceAccountView:
    """Needs read:service_account; keys masked."""
    await _find(mgmt, actor, org_id, sa_id, "read:service_account")

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
    await mgmt.require(actor, org_id, "read:service_account")

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
    await _find(mgmt, actor, org_id, sa_id, "update:service_account")

    def body(w: Write) -> tuple[ServiceAccountView, IssuedKey]:
        s = w.session
        sa = _locked(w, org_id, sa_id)
        stop_at = w.now + timedelta(seconds=grace_s)
        for old in s.scalars(select(ApiKey).where(ApiKey.service_account_id == sa_id)):
            if old.revoked_at is None or as_utc(old.revoked_at) > stop_at:
                old.revoked_at = stop_at
        issued = _new_key(w, sa, key_ttl_s)
        s.flush()
        Management.audit(
            w,
            actor,
            "orgauthz.api-key.rotated",
            f"service_account:{sa_id}",
            details={
                "grace_period_s": grace_s,
                "key_expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            },
        )
        # No Casbin line changes; the write still gets a revision like every write.
        return _view(s, sa, w.now), issued

    (shown, issued), revision = await mgmt.write(org_id, "api-key.rotated", body)
    return shown, issued, revision


async def delete_service_account(mgmt: Management, actor: Actor, org_id: str, sa_id: str) -> int:
    """Deletes the account, its keys, membership and workspace grants in one write (R13)."""
    await _find(mgmt, actor, org_id, sa_id, "delete:service_account")

    def body(w: Write) -> None:
        s = w.session
        sa = _locked(w, org_id, sa_id)
        subject = f"service_account:{sa_id}"
        removed = remove_from_organization(w, org_id, subject, sa.org_role)
        keys = len(list(s.scalars(select(ApiKey.id).where(ApiKey.service_account_id == sa_id))))
        s.execute(delete(ApiKey).where(ApiKey.service_account_id == sa_id))
        s.delete(sa)
        Management.audit(
            w,
            actor,
            "orgauthz.service-account.deleted",
            subject,
            details={"name": sa.name, "grants_removed": removed, "keys_revoked": keys},
        )

    _, revision = await mgmt.write(org_id, "service-account.deleted", body)
    return revision


# -- R14 -----------------------------------------------------------------------------------


async def authenticate_key(mgmt: Management, api_key: str) -> Actor:
    """The service account presenting ``api_key``, as an actor of its organization.

    Raises Unauthenticated("invalid API key") for a malformed, unknown, expired or revoked
    key; the message never includes the key. Looked up by hash, then compared in constant time.
    """
    if sec.parse_api_key(api_key) is None:
        raise Unauthenticated(INVALID_KEY)
    hashed = sec.digest(api_key)
    row = await mgmt.read(
        lambda s: s.execute(
            select(
                ApiKey.key_hash, ApiKey.service_account_id, ApiKey.org_id, ApiKey.expires_at, ApiKey.revoked_at
            ).where(ApiKey.key_hash == hashed)
        ).first()
    )
    if (
        row is None
        or not sec.same_digest(row.key_hash, api_key)
        or not _works(row.expires_at, row.revoked_at, utcnow())
    ):
        raise Unauthenticated(INVALID_KEY)
    return Actor(subject=f"service_account:{row.service_account_id}", org_id=row.org_id)


class KeyAuthenticator:
    """What ``AuthorizationService.Authenticate`` calls: key -> (service account id, organization id)."""

    def __init__(self, mgmt: Management) -> None:
        self.mgmt = mgmt

    async def authenticate(self, api_key: str) -> tuple[str, str]:
        actor = await authenticate_key(self.mgmt, api_key)
        return actor.id, actor.org_id
