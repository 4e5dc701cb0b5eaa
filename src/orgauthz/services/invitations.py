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
from typing import Any

from sqlalchemy import bindparam, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from orgauthz.domain import bounds, rules
from orgauthz.domain import lines as L
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE
from orgauthz.errors import (
    FailedPrecondition,
    InvalidArgument,
    InvitationUnusable,
    NotFound,
    PermissionDenied,
)
from orgauthz.services import outbox
from orgauthz.services import secrets as sec
from orgauthz.services.context import Actor, Management, audit
from orgauthz.services.roles import check_role_found, check_role_row, role_read
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read, Write, as_utc, utcnow
from orgauthz.store.models import CustomRole, Invitation, Membership, Organization, User

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


def _status(row: Any, now: datetime) -> Status:
    """The status as reads show it: a pending invitation past its expiry is expired."""
    status = Status(row.status)
    if status is Status.PENDING and as_utc(row.expires_at) <= now:
        return Status.EXPIRED
    return status


def view(row: Invitation, now: datetime) -> InvitationView:
    return InvitationView(
        id=row.id,
        org_id=row.org_id,
        email=row.email,
        org_role=row.org_role,
        status=_status(row, now),
        invited_by=row.invited_by,
        accepted_by=row.accepted_by or "",
        expires_at=as_utc(row.expires_at),
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
    if role in mgmt.policy.builtin_names(WORKSPACE):  # a workspace role is no organization role at all
        check_role_found(mgmt.policy, org_id, role, ORGANIZATION, "org_role", (None, None))
    rules.check_invitation_role(actor_role=await mgmt.org_role_of(actor, org_id), role=role)


def _pending_now(now: datetime) -> ColumnElement[bool]:
    return (Invitation.status == Status.PENDING.value) & (Invitation.expires_at > now)


# What the writes read under the write lock, built once with bindparams. ``now`` in a read is
# the time the call began: the decision's own (``Locked.now``) is taken once the lock is
# held, a moment later.
_ORG = select(Organization.name, Organization.max_members).where(Organization.id == bindparam("org"))
_INVITATION = select(
    Invitation.id,
    Invitation.org_id,
    Invitation.email,
    Invitation.org_role,
    Invitation.status,
    Invitation.token_hash,
    Invitation.invited_by,
    Invitation.accepted_by,
    Invitation.expires_at,
    Invitation.created_at,
    Invitation.updated_at,
).where(Invitation.id == bindparam("id"))
_PENDING_AT = (Invitation.status == Status.PENDING.value) & (Invitation.expires_at > bindparam("now"))
# R10: members plus pending invitations.
_SEATS = select(
    select(func.count())
    .select_from(Membership)
    .where(Membership.org_id == bindparam("org"))
    .scalar_subquery()
    .label("members"),
    select(func.count())
    .select_from(Invitation)
    .where(Invitation.org_id == bindparam("org"), _PENDING_AT)
    .scalar_subquery()
    .label("pending"),
)
# Create: the addresses (lower-cased) that belong to members, and the invitations still
# pending by status (expired or not) to the addresses.
_MEMBER_EMAILS = (
    select(func.lower(User.email).label("email"))
    .join(Membership, Membership.user_id == User.id)
    .where(Membership.org_id == bindparam("org"), func.lower(User.email).in_(bindparam("emails", expanding=True)))
)
_OPEN = select(Invitation.id, Invitation.email, Invitation.expires_at).where(
    Invitation.org_id == bindparam("org"),
    Invitation.status == Status.PENDING.value,
    Invitation.email.in_(bindparam("emails", expanding=True)),
)
# Resend: whether the invitation's address belongs to a member, and how many other
# invitations to it are pending.
_named = aliased(Invitation)  # the invitation ``id``, inside reads of other rows
_EMAIL_OF = select(_named.email).where(_named.id == bindparam("id")).scalar_subquery()
_EMAIL_IS_MEMBER = (
    select(func.count().label("n"))
    .select_from(Membership)
    .join(User, User.id == Membership.user_id)
    .where(Membership.org_id == bindparam("org"), func.lower(User.email) == _EMAIL_OF)
)
_OTHER_PENDING = (
    select(func.count().label("n"))
    .select_from(Invitation)
    .where(
        Invitation.org_id == bindparam("org"),
        Invitation.email == _EMAIL_OF,
        Invitation.id != bindparam("id"),
        _PENDING_AT,
    )
)
# Accept: the membership, the user row, and the custom role the invitation names (the
# row :func:`~orgauthz.services.roles.check_role_row` takes; none for a built-in role).
_MEMBERSHIP = select(Membership.user_id).where(
    Membership.org_id == bindparam("org"), Membership.user_id == bindparam("user")
)
_USER = select(User.id).where(User.id == bindparam("user"))
# The inviter's organization role now (R8, R24: an Owner or Admin invitation stands only while
# whoever sent it could still send it).
_INVITER_ROLE = select(Membership.org_role).where(
    Membership.org_id == bindparam("org"),
    literal("user:") + Membership.user_id
    == select(_named.invited_by).where(_named.id == bindparam("id")).scalar_subquery(),
)
_INVITED_ROLE = select(CustomRole.org_id, CustomRole.level).where(
    CustomRole.id == select(_named.org_role).where(_named.id == bindparam("id")).scalar_subquery()
)


def _org(at: Locked, org_id: str) -> Any:
    org = at.one("org")
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    return org


def _seats_taken(at: Locked) -> int:
    """Members plus pending invitations (R10), as read under the lock."""
    seats = at.one("seats")
    return int(seats.members) + int(seats.pending) if seats is not None else 0


def _issue(
    mgmt: Management, org_name: str, *, email: str, role: str, expires_at: datetime, now: datetime
) -> tuple[str, str, list[Write]]:
    """A fresh token: (the token, its digest to store, the outbox row to insert). The token is
    returned when there is no SMTP ("" and no row otherwise), else queued in an email (R9)."""
    token = sec.new_token()
    hashed = sec.digest(token)
    if not mgmt.mail.enabled:
        return token, hashed, []
    subject, body = outbox.invitation_mail(mgmt.mail, org_name=org_name, role=role, token=token, expires_at=expires_at)
    mail = outbox.enqueue(mgmt.mail, kind=outbox.INVITATION, recipient=email, subject=subject, body=body, now=now)
    return "", hashed, [mail]


def _after(row: Any, **changes: Any) -> Invitation:
    """The invitation of a read row as the write leaves it (for the answer; never added)."""
    return Invitation(**{**row._asdict(), **changes})


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

    addresses = list(wanted)
    called = utcnow()
    reads: dict[str, Read] = {
        "org": (_ORG, {"org": org_id}),
        "role": role_read(role),
        "members": (_MEMBER_EMAILS, {"org": org_id, "emails": addresses}),
        "open": (_OPEN, {"org": org_id, "emails": addresses}),
        "seats": (_SEATS, {"org": org_id, "now": called}),
    }

    def decide(at: Locked) -> Decision[list[tuple[int, InviteResult]]]:
        now = at.now
        org = _org(at, org_id)
        check_role_row(mgmt.policy, org_id, role, ORGANIZATION, "org_role", at.one("role"))
        members = {r.email for r in at["members"] if r.email}
        open_rows = at["open"]
        pending = {r.email for r in open_rows if as_utc(r.expires_at) > now}
        writes = [  # expired ones give way to the new invitation
            store.update(Invitation, {"id": r.id}, status=Status.EXPIRED.value, updated_at=now)
            for r in open_rows
            if r.email not in pending
        ]
        out: list[tuple[int, InviteResult]] = []
        audits = []
        fresh = [e for e in wanted if e not in members and e not in pending]
        if fresh:
            rules.check_limit(rules.SEATS, used=_seats_taken(at), adding=len(fresh), limit=org.max_members)
        for email, i in wanted.items():
            raw = emails[i]
            if email in members:
                out.append((i, InviteResult(email=raw, outcome=Outcome.ALREADY_MEMBER)))
                continue
            if email in pending:
                out.append((i, InviteResult(email=raw, outcome=Outcome.ALREADY_INVITED)))
                continue
            expires = now + timedelta(seconds=ttl_s)
            token, hashed, mail = _issue(mgmt, org.name, email=email, role=role, expires_at=expires, now=now)
            row = {
                "id": f"inv-{_secrets.token_hex(10)}",
                "org_id": org_id,
                "email": email,
                "org_role": role,
                "status": Status.PENDING.value,
                "token_hash": hashed,
                "invited_by": actor.subject,
                "accepted_by": None,
                "expires_at": expires,
                "created_at": now,
                "updated_at": now,
            }
            writes += [store.insert(Invitation, row), *mail]
            audits.append(
                audit(
                    actor,
                    "orgauthz.invitation.created",
                    f"invitation:{row['id']}",
                    details={"email": email, "org_role": role},
                )
            )
            shown = view(Invitation(**row), now)
            out.append((i, InviteResult(email=raw, outcome=Outcome.INVITED, invitation=shown, token=token)))
        if not fresh:
            raise _NothingToWrite(out)
        return Decision(out, writes=writes, audits=audits)

    try:
        done, revision = await mgmt.write(org_id, "invitation.created", reads, decide)
    except _NothingToWrite as nothing:
        done, revision = nothing.results, 0
    for i, result in done:
        results[i] = result
    if revision and nudge is not None:
        nudge()
    return [r for r in results if r is not None], revision


class _NothingToWrite(Exception):  # control flow: a decision that writes nothing (no revision)
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


def _locked(at: Locked, invitation_id: str, org_id: str) -> Any:
    """The invitation as read under the write lock (``_INVITATION``)."""
    row = at.one("invitation")
    if row is None or row.org_id != org_id:
        raise NotFound(f"invitation {invitation_id!r} not found")
    return row


def _invitation_read(invitation_id: str) -> Read:
    return _INVITATION, {"id": invitation_id}


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
    """Needs update:invitation. FailedPrecondition unless the invitation is pending."""
    await _find(mgmt, actor, org_id, invitation_id, "update:invitation")

    def decide(at: Locked) -> Decision[InvitationView]:
        row = _locked(at, invitation_id, org_id)
        current = _status(row, at.now)
        if current is not Status.PENDING:
            raise FailedPrecondition(f"only a pending invitation can be revoked; this one is {current}")
        changes = {"status": Status.REVOKED.value, "updated_at": at.now}
        return Decision(
            view(_after(row, **changes), at.now),
            writes=[store.update(Invitation, {"id": row.id}, **changes)],
            audits=[audit(actor, "orgauthz.invitation.revoked", f"invitation:{row.id}", details={"email": row.email})],
        )

    return await mgmt.write(org_id, "invitation.revoked", {"invitation": _invitation_read(invitation_id)}, decide)


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

    called = utcnow()
    reads: dict[str, Read] = {
        "org": (_ORG, {"org": org_id}),
        "invitation": _invitation_read(invitation_id),
        "member": (_EMAIL_IS_MEMBER, {"org": org_id, "id": invitation_id}),
        "other": (_OTHER_PENDING, {"org": org_id, "id": invitation_id, "now": called}),
        "seats": (_SEATS, {"org": org_id, "now": called}),
    }

    def decide(at: Locked) -> Decision[tuple[InvitationView, str]]:
        now = at.now
        org = _org(at, org_id)
        row = _locked(at, invitation_id, org_id)
        current = _status(row, now)
        if current not in (Status.PENDING, Status.EXPIRED):
            raise FailedPrecondition(f"only a pending or expired invitation can be resent; this one is {current}")
        if at["member"][0].n:
            raise FailedPrecondition("the address already belongs to a member of the organization")
        if current is Status.EXPIRED:
            if at["other"][0].n:
                raise FailedPrecondition("the address has another pending invitation")
            rules.check_limit(rules.SEATS, used=_seats_taken(at), adding=1, limit=org.max_members)
        expires = now + timedelta(seconds=ttl_s)
        token, hashed, mail = _issue(mgmt, org.name, email=row.email, role=row.org_role, expires_at=expires, now=now)
        changes = {"status": Status.PENDING.value, "token_hash": hashed, "expires_at": expires, "updated_at": now}
        event = audit(
            actor,
            "orgauthz.invitation.resent",
            f"invitation:{row.id}",
            details={"email": row.email, "expires_at": expires.isoformat()},
        )
        return Decision(
            (view(_after(row, **changes), now), token),
            writes=[store.update(Invitation, {"id": row.id}, **changes), *mail],
            audits=[event],
        )

    (shown, token), revision = await mgmt.write(org_id, "invitation.resent", reads, decide)
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


def _usable(at: Locked, token: str, invitation_id: str, org_id: str, email: str) -> Any:
    """The invitation, read under the write lock: pending, unexpired, token current, email matching."""
    row = _locked(at, invitation_id, org_id)
    if not sec.same_digest(row.token_hash, token):
        raise InvitationUnusable("this invitation token was replaced by a newer one (the invitation was resent)")
    current = _status(row, at.now)
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

    reads: dict[str, Read] = {
        "invitation": _invitation_read(invitation_id),
        "member": (_MEMBERSHIP, {"org": org_id, "user": uid}),
        "role": (_INVITED_ROLE, {"id": invitation_id}),
        "user": (_USER, {"user": uid}),
        "inviter": (_INVITER_ROLE, {"org": org_id, "id": invitation_id}),
    }

    def decide(at: Locked) -> Decision[InvitationView]:
        now = at.now
        row = _usable(at, token, invitation_id, org_id, email)
        if at["member"]:
            raise FailedPrecondition("the user is already a member of the organization")
        if rules.is_admin(row.org_role):
            inviter = at.one("inviter")
            try:
                rules.check_invitation_role(actor_role=inviter.org_role if inviter else None, role=row.org_role)
            except PermissionDenied:
                raise InvitationUnusable(
                    f"whoever invited may no longer give the {row.org_role} role (R8, R24); ask for a new invitation"
                ) from None
        try:
            check_role_row(mgmt.policy, org_id, row.org_role, ORGANIZATION, "org_role", at.one("role"))
        except InvalidArgument:
            raise InvitationUnusable("the invited role no longer exists; ask for a new invitation") from None
        user = (
            store.update(User, {"id": uid}, email=email)
            if at["user"]
            else store.insert(User, {"id": uid, "email": email, "created_at": now})
        )
        member = {"org_id": org_id, "user_id": uid, "org_role": row.org_role, "created_at": now}
        changes = {"status": Status.ACCEPTED.value, "accepted_by": uid, "updated_at": now}
        event = audit(
            actor,
            "orgauthz.invitation.accepted",
            f"invitation:{row.id}",
            details={"email": email, "user": uid, "org_role": row.org_role},
        )
        return Decision(
            view(_after(row, **changes), now),
            # the membership's foreign key needs the user row first
            writes=[user, store.insert(Membership, member), store.update(Invitation, {"id": row.id}, **changes)],
            audits=[event],
            change=at.change(add=L.membership_lines(f"user:{uid}", org_id, row.org_role)),
        )

    return await mgmt.write(org_id, "invitation.accepted", reads, decide)


async def reject_invitation(
    mgmt: Management, actor: Actor, *, token: str, user_id: str, email: str
) -> tuple[InvitationView, int]:
    """The invited user declines; same checks as :func:`accept_invitation`, no membership."""
    _accepting_user(actor, user_id)
    invitation_id, org_id = await _by_token(mgmt, token)

    def decide(at: Locked) -> Decision[InvitationView]:
        row = _usable(at, token, invitation_id, org_id, email)
        changes = {"status": Status.REJECTED.value, "updated_at": at.now}
        return Decision(
            view(_after(row, **changes), at.now),
            writes=[store.update(Invitation, {"id": row.id}, **changes)],
            audits=[audit(actor, "orgauthz.invitation.rejected", f"invitation:{row.id}", details={"email": email})],
        )

    return await mgmt.write(org_id, "invitation.rejected", {"invitation": _invitation_read(invitation_id)}, decide)
