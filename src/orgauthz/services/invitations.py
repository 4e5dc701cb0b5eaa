"""Invitations: people join an organization by email (R5-R10).

An invitation carries one organization role, an expiry and a one-time token of which only
the SHA-256 is stored (:mod:`orgauthz.services.secrets`). Its status is pending, accepted,
rejected, revoked or expired; a pending invitation past its expiry reads as expired.

Every check that depends on other rows (already a member, already invited, the member
limit, the token still pending) runs inside the write, under the global write lock, so two
racing calls are serialized: a token is accepted once, and members plus pending
invitations never exceed ``max_members`` (R10). A refused call raises before the write
commits, so it changes nothing.

With SMTP configured the token goes out only in an email queued in the outbox in the same
transaction (R9); without it, the token is handed back to the caller once.
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from orgauthz.domain import bounds, rules
from orgauthz.domain import lines as L
from orgauthz.domain.policy import ORGANIZATION
from orgauthz.errors import (
    FailedPrecondition,
    InvalidArgument,
    InvitationUnusable,
    NotFound,
    PermissionDenied,
)
from orgauthz.services import outbox
from orgauthz.services import secrets as sec
from orgauthz.services.context import Actor, Management
from orgauthz.services.roles import check_role
from orgauthz.store.db import Write, as_utc, utcnow
from orgauthz.store.models import Invitation, Membership, Organization, User

TTL_MAX_S = 90 * 24 * 3600


class Status(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Outcome(StrEnum):
    INVITED = "invited"
    ALREADY_MEMBER = "already_member"
    ALREADY_INVITED = "already_invited"
    ERROR = "error"


@dataclass(frozen=True)
class InvitationView:
    """An invitation as reads show it: never its token or token hash."""

    id: str
    org_id: str
    email: str
    org_role: str
    status: Status
    invited_by: str
    accepted_by: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InviteResult:
    email: str
    outcome: Outcome
    invitation: InvitationView | None = None
    token: str = ""  # only without SMTP (R9)
    error: str = ""


def view(row: Invitation, now: datetime) -> InvitationView:
    expires = as_utc(row.expires_at)
    status = Status(row.status)
    if status is Status.PENDING and expires <= now:
        status = Status.EXPIRED
    return InvitationView(
        id=row.id,
        org_id=row.org_id,
        email=row.email,
        org_role=row.org_role,
        status=status,
        invited_by=row.invited_by,
        accepted_by=row.accepted_by or "",
        expires_at=expires,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def check_ttl(field: str, seconds: int, default: int) -> int:
    """0: the configured default; otherwise 60 s to 90 days."""
    if seconds == 0:
        return default
    if seconds < 60 or seconds > TTL_MAX_S:
        raise InvalidArgument(field, f"must be 0 (default) or between 60 and {TTL_MAX_S} seconds")
    return seconds


async def _require_may_invite(mgmt: Management, actor: Actor, org_id: str, role: str) -> None:
    await mgmt.require(actor, org_id, "create:invitation")
    rules.check_invitation_role(actor_role=await mgmt.org_role_of(actor, org_id), role=role)


def _pending_now(now: datetime) -> ColumnElement[bool]:
    return (Invitation.status == Status.PENDING.value) & (Invitation.expires_at > now)


def _org(s: Session, org_id: str) -> Organization:
    org = s.get(Organization, org_id)
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    return org


def _seats_taken(s: Session, org_id: str, now: datetime) -> int:
    """Members plus pending invitations (R10)."""
    members = s.scalar(select(func.count()).select_from(Membership).where(Membership.org_id == org_id)) or 0
    pending = (
        s.scalar(select(func.count()).select_from(Invitation).where(Invitation.org_id == org_id, _pending_now(now)))
        or 0
    )
    return int(members) + int(pending)


def _member_emails(s: Session, org_id: str, emails: Sequence[str]) -> set[str]:
    rows = s.scalars(
        select(func.lower(User.email))
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, func.lower(User.email).in_(list(emails)))
    )
    return {e for e in rows if e}


def _issue(mgmt: Management, w: Write, org: Organization, row: Invitation) -> str:
    """A fresh token for ``row``: returned when there is no SMTP, else queued in an email."""
    token = sec.new_token()
    row.token_hash = sec.digest(token)
    if not mgmt.settings.smtp_host:
        return token
    subject, body = outbox.invitation_mail(
        mgmt.settings, org_name=org.name, role=row.org_role, token=token, expires_at=as_utc(row.expires_at)
    )
    outbox.enqueue(
        w.session, mgmt.settings, kind=outbox.INVITATION, recipient=row.email, subject=subject, body=body, now=w.now
    )
    return ""


async def create_invitations(
    mgmt: Management,
    actor: Actor,
    org_id: str,
    emails: Sequence[str],
    *,
    role: str,
    ttl_s: int,
    nudge: Callable[[], None] | None = None,
) -> tuple[list[InviteResult], int]:
    """Invites each address; one result per address, in order (R5, R7).

    Needs create:invitation, and the Admin role only by an Admin (R8). Raises LimitExceeded
    when the new invitations would exceed ``max_members`` (nothing is written), and
    InvalidArgument for a role that is not an organization role. Returns revision 0 when no
    address was invited (nothing written).
    """
    await _require_may_invite(mgmt, actor, org_id, role)
    results: list[InviteResult | None] = []
    wanted: dict[str, int] = {}  # lower-cased address -> index of its result
    for i, raw in enumerate(emails):
        try:
            email = bounds.check_email(f"emails[{i}]", raw)
        except InvalidArgument as exc:
            results.append(InviteResult(email=raw, outcome=Outcome.ERROR, error=str(exc)))
            continue
        if email in wanted:
            results.append(InviteResult(email=raw, outcome=Outcome.ALREADY_INVITED))
            continue
        wanted[email] = i
        results.append(None)

    def body(w: Write) -> list[tuple[int, InviteResult]]:
        s, now = w.session, w.now
        org = _org(s, org_id)
        check_role(s, mgmt.policy, org_id, role, ORGANIZATION, "org_role")
        members = _member_emails(s, org_id, list(wanted))
        open_rows = list(
            s.scalars(
                select(Invitation).where(
                    Invitation.org_id == org_id,
                    Invitation.status == Status.PENDING.value,
                    Invitation.email.in_(list(wanted)),
                )
            )
        )
        pending = {r.email for r in open_rows if as_utc(r.expires_at) > now}
        for r in open_rows:  # expired ones give way to the new invitation
            if r.email not in pending:
                r.status, r.updated_at = Status.EXPIRED.value, now
        out: list[tuple[int, InviteResult]] = []
        fresh = [e for e in wanted if e not in members and e not in pending]
        if fresh:
            rules.check_limit(rules.SEATS, used=_seats_taken(s, org_id, now), adding=len(fresh), limit=org.max_members)
        for email, i in wanted.items():
            raw = emails[i]
            if email in members:
                out.append((i, InviteResult(email=raw, outcome=Outcome.ALREADY_MEMBER)))
                continue
            if email in pending:
                out.append((i, InviteResult(email=raw, outcome=Outcome.ALREADY_INVITED)))
                continue
            row = Invitation(
                id=f"inv-{_secrets.token_hex(10)}",
                org_id=org_id,
                email=email,
                org_role=role,
                status=Status.PENDING.value,
                token_hash="",
                invited_by=actor.subject,
                accepted_by=None,
                expires_at=now + timedelta(seconds=ttl_s),
                created_at=now,
                updated_at=now,
            )
            token = _issue(mgmt, w, org, row)
            s.add(row)
            Management.audit(
                w,
                actor,
                "orgauthz.invitation.created",
                f"invitation:{row.id}",
                details={"email": email, "org_role": role},
            )
            out.append((i, InviteResult(email=raw, outcome=Outcome.INVITED, invitation=view(row, now), token=token)))
        if not fresh:
            raise _NothingToWrite(out)
        return out

    try:
        done, revision = await mgmt.write(org_id, "invitation.created", body)
    except _NothingToWrite as nothing:
        done, revision = nothing.results, 0
    for i, result in done:
        results[i] = result
    if revision and nudge is not None:
        nudge()
    return [r for r in results if r is not None], revision


class _NothingToWrite(Exception):  # control flow: roll back a write that changed nothing
    def __init__(self, results: list[tuple[int, InviteResult]]) -> None:
        super().__init__("no invitation written")
        self.results = results


async def _find(mgmt: Management, actor: Actor, org_id: str, invitation_id: str, permission: str) -> InvitationView:
    await mgmt.require(actor, org_id, permission)

    def read(s: Session) -> InvitationView | None:
        row = s.get(Invitation, invitation_id)
        return view(row, utcnow()) if row is not None else None  # before the read's rollback expires it

    found = await mgmt.read(read)
    if found is None or found.org_id != org_id:
        raise NotFound(f"invitation {invitation_id!r} not found")
    return found


def _locked(w: Write, invitation_id: str, org_id: str) -> Invitation:
    row = w.session.scalar(select(Invitation).where(Invitation.id == invitation_id).with_for_update())
    if row is None or row.org_id != org_id:
        raise NotFound(f"invitation {invitation_id!r} not found")
    return row


async def get_invitation(mgmt: Management, actor: Actor, org_id: str, invitation_id: str) -> InvitationView:
    """Needs read:invitation."""
    return await _find(mgmt, actor, org_id, invitation_id, "read:invitation")


async def list_invitations(
    mgmt: Management, actor: Actor, org_id: str, *, status: Status | None, page_size: int, after: str
) -> tuple[list[InvitationView], str]:
    """Ordered by id; ``status`` filters as reads show it (expired includes pending past expiry)."""
    await mgmt.require(actor, org_id, "read:invitation")
    now = utcnow()
    q = select(Invitation).where(Invitation.org_id == org_id)
    if status is Status.PENDING:
        q = q.where(_pending_now(now))
    elif status is Status.EXPIRED:
        q = q.where(
            or_(
                Invitation.status == Status.EXPIRED.value,
                (Invitation.status == Status.PENDING.value) & (Invitation.expires_at <= now),
            )
        )
    elif status is not None:
        q = q.where(Invitation.status == status.value)
    if after:
        q = q.where(Invitation.id > after)
    rows: list[InvitationView] = await mgmt.read(
        lambda s: [view(r, now) for r in s.scalars(q.order_by(Invitation.id).limit(page_size + 1))]
    )
    token = rows[page_size - 1].id if len(rows) > page_size else ""
    return rows[:page_size], token


async def revoke_invitation(
    mgmt: Management, actor: Actor, org_id: str, invitation_id: str
) -> tuple[InvitationView, int]:
    """Needs delete:invitation. FailedPrecondition unless the invitation is pending."""
    await _find(mgmt, actor, org_id, invitation_id, "delete:invitation")

    def body(w: Write) -> InvitationView:
        row = _locked(w, invitation_id, org_id)
        current = view(row, w.now).status
        if current is not Status.PENDING:
            raise FailedPrecondition(f"only a pending invitation can be revoked; this one is {current}")
        row.status, row.updated_at = Status.REVOKED.value, w.now
        Management.audit(w, actor, "orgauthz.invitation.revoked", f"invitation:{row.id}", details={"email": row.email})
        return view(row, w.now)

    return await mgmt.write(org_id, "invitation.revoked", body)


async def resend_invitation(
    mgmt: Management,
    actor: Actor,
    org_id: str,
    invitation_id: str,
    *,
    ttl_s: int,
    nudge: Callable[[], None] | None = None,
) -> tuple[InvitationView, str, int]:
    """A new token and expiry for a pending or expired invitation; the old token stops working.

    Needs create:invitation (and Admin for an Admin invitation, R8). Reviving an expired
    invitation counts against ``max_members`` again (R10). Returns the view, the token
    ("" with SMTP) and the revision.
    """
    found = await _find(mgmt, actor, org_id, invitation_id, "create:invitation")
    await _require_may_invite(mgmt, actor, org_id, found.org_role)

    def body(w: Write) -> tuple[InvitationView, str]:
        s, now = w.session, w.now
        org = _org(s, org_id)
        row = _locked(w, invitation_id, org_id)
        current = view(row, now).status
        if current not in (Status.PENDING, Status.EXPIRED):
            raise FailedPrecondition(f"only a pending or expired invitation can be resent; this one is {current}")
        if _member_emails(s, org_id, [row.email]):
            raise FailedPrecondition("the address already belongs to a member of the organization")
        if current is Status.EXPIRED:
            other = s.scalar(
                select(func.count())
                .select_from(Invitation)
                .where(
                    Invitation.org_id == org_id,
                    Invitation.email == row.email,
                    Invitation.id != row.id,
                    _pending_now(now),
                )
            )
            if other:
                raise FailedPrecondition("the address has another pending invitation")
            rules.check_limit(rules.SEATS, used=_seats_taken(s, org_id, now), adding=1, limit=org.max_members)
        row.status, row.expires_at, row.updated_at = Status.PENDING.value, now + timedelta(seconds=ttl_s), now
        token = _issue(mgmt, w, org, row)
        Management.audit(
            w,
            actor,
            "orgauthz.invitation.resent",
            f"invitation:{row.id}",
            details={"email": row.email, "expires_at": row.expires_at.isoformat()},
        )
        return view(row, now), token

    (shown, token), revision = await mgmt.write(org_id, "invitation.resent", body)
    if nudge is not None:
        nudge()
    return shown, token, revision


# -- the invited user -------------------------------------------------------------------


async def _by_token(mgmt: Management, token: str) -> tuple[str, str]:
    """(invitation id, organization id) of the token; NotFound for a token that names nothing."""
    if not sec.is_token(token):
        raise NotFound("no invitation has this token")
    hashed = sec.digest(token)
    found = await mgmt.read(
        lambda s: s.execute(
            select(Invitation.id, Invitation.org_id, Invitation.token_hash).where(Invitation.token_hash == hashed)
        ).first()
    )
    if found is None or not sec.same_digest(found.token_hash, token):
        raise NotFound("no invitation has this token")
    return found.id, found.org_id


def _usable(w: Write, token: str, invitation_id: str, org_id: str, email: str) -> Invitation:
    """The invitation, re-read under the write lock: pending, unexpired, token current, email matching."""
    row = _locked(w, invitation_id, org_id)
    if not sec.same_digest(row.token_hash, token):
        raise InvitationUnusable("this invitation token was replaced by a newer one (the invitation was resent)")
    current = view(row, w.now).status
    if current is Status.EXPIRED:
        raise InvitationUnusable(f"the invitation expired on {as_utc(row.expires_at):%Y-%m-%d %H:%M} UTC")
    if current is Status.ACCEPTED:
        raise InvitationUnusable("the invitation was already accepted; a token works once")
    if current is not Status.PENDING:
        raise InvitationUnusable(f"the invitation was {current}")
    if row.email != email:
        raise PermissionDenied("the verified email does not match the invitation")
    return row


def _accepting_user(actor: Actor, user_id: str) -> str:
    if not actor.is_user:
        raise PermissionDenied("only the invited user may accept or reject an invitation")
    if user_id and user_id != actor.id:
        raise PermissionDenied("user_id must be the calling actor")
    return actor.id


async def accept_invitation(
    mgmt: Management, actor: Actor, *, token: str, user_id: str, email: str
) -> tuple[InvitationView, int]:
    """Makes the user a member with the invited role, in one write with the status change (R6).

    ``email`` is the user's verified address, already lower-cased. Raises NotFound for an
    unknown token, InvitationUnusable for one expired, revoked, rejected or used,
    PermissionDenied for another address, FailedPrecondition when already a member.
    """
    uid = _accepting_user(actor, user_id)
    invitation_id, org_id = await _by_token(mgmt, token)

    def body(w: Write) -> InvitationView:
        s, now = w.session, w.now
        row = _usable(w, token, invitation_id, org_id, email)
        if s.get(Membership, (org_id, uid)) is not None:
            raise FailedPrecondition("the user is already a member of the organization")
        try:
            check_role(s, mgmt.policy, org_id, row.org_role, ORGANIZATION, "org_role")
        except InvalidArgument:
            raise InvitationUnusable("the invited role no longer exists; ask for a new invitation") from None
        user = s.get(User, uid)
        if user is None:
            s.add(User(id=uid, email=email, created_at=now))
            s.flush()  # the membership's foreign key needs the user row first
        else:
            user.email = email
        s.add(Membership(org_id=org_id, user_id=uid, org_role=row.org_role, created_at=now))
        w.change.add.extend(L.membership_lines(f"user:{uid}", org_id, row.org_role))
        row.status, row.accepted_by, row.updated_at = Status.ACCEPTED.value, uid, now
        Management.audit(
            w,
            actor,
            "orgauthz.invitation.accepted",
            f"invitation:{row.id}",
            details={"email": email, "user": uid, "org_role": row.org_role},
        )
        return view(row, now)

    return await mgmt.write(org_id, "invitation.accepted", body)


async def reject_invitation(
    mgmt: Management, actor: Actor, *, token: str, user_id: str, email: str
) -> tuple[InvitationView, int]:
    """The invited user declines; same checks as :func:`accept_invitation`, no membership."""
    _accepting_user(actor, user_id)
    invitation_id, org_id = await _by_token(mgmt, token)

    def body(w: Write) -> InvitationView:
        row = _usable(w, token, invitation_id, org_id, email)
        row.status, row.updated_at = Status.REJECTED.value, w.now
        Management.audit(w, actor, "orgauthz.invitation.rejected", f"invitation:{row.id}", details={"email": email})
        return view(row, w.now)

    return await mgmt.write(org_id, "invitation.rejected", body)
