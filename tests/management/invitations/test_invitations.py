"""Invitations through the gRPC path (R5-R10), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import select

from orgauthz.api.server import App
from orgauthz.store import base as store
from orgauthz.store.db import utcnow
from orgauthz.store.models import AuditEvent, Invitation, Membership, User
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import invitations_pb2 as pb
from orgauthz.v1 import invitations_pb2_grpc as pb_grpc
from tests.support.orgs import ACME_INVITATIONS, GLOBEX_ONE_ADMIN, doc, seed
from tests.support.store import commit_rows

INVITED = pb.INVITATION_OUTCOME_INVITED


def as_user(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-actor", f"user:{user}"),)


@pytest.fixture
async def rev(app: App, policy) -> int:
    revision = seed(app.db, policy, doc(ACME_INVITATIONS, GLOBEX_ONE_ADMIN))
    await app.feed.wait_for(revision, 10)
    return revision


@pytest.fixture
def invites(channel: grpc.aio.Channel, rev: int) -> pb_grpc.InvitationServiceStub:
    return pb_grpc.InvitationServiceStub(channel)


async def invite(stub, *emails: str, role: str = "Member", by: str = "alice") -> pb.CreateInvitationsResponse:
    return await stub.CreateInvitations(
        pb.CreateInvitationsRequest(organization="acme", emails=list(emails), org_role=role), metadata=as_user(by)
    )


async def accept(stub, token: str, user: str, email: str) -> pb.AcceptInvitationResponse:
    return await stub.AcceptInvitation(
        pb.AcceptInvitationRequest(token=token, user_id=user, email=email), metadata=as_user(user)
    )


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_r5_invite_many_then_accept_makes_a_member(app: App, invites, authz) -> None:
    r = await invite(invites, "Dan@Example.com", "erin@example.com")
    assert [x.outcome for x in r.results] == [INVITED, INVITED]
    assert r.revision > 0
    first = r.results[0]
    assert first.invitation.email == "dan@example.com"
    assert first.token
    assert first.invitation.status == pb.INVITATION_STATUS_PENDING
    ttl = first.invitation.expires_at.ToDatetime() - first.invitation.created_at.ToDatetime()
    assert ttl == timedelta(days=7)
    done = await accept(invites, first.token, "dan", "dan@example.com")
    assert done.invitation.status == pb.INVITATION_STATUS_ACCEPTED
    assert done.invitation.accepted_by == "dan"
    # The write is visible to Check at once (the Member permission read:workspace).
    c = await authz.Check(apb.CheckRequest(subject="user:dan", organization="acme", scope="read:workspace"))
    assert c.allowed
    assert c.revision >= done.revision
    c = await authz.Check(apb.CheckRequest(subject="user:dan", workspace="acme-prod", scope="see_flows"))
    assert c.allowed  # the default workspace role applies to the new member
    with app.db.read() as s:
        assert s.get(Membership, ("acme", "dan")).org_role == "Member"
        assert s.get(User, "dan").email == "dan@example.com"
    listed = await invites.ListInvitations(
        pb.ListInvitationsRequest(organization="acme", status=pb.INVITATION_STATUS_PENDING), metadata=as_user("alice")
    )
    assert [i.email for i in listed.invitations] == ["erin@example.com"]


async def test_r6_token_works_once(app: App, invites) -> None:
    token = (await invite(invites, "dan@example.com")).results[0].token
    await accept(invites, token, "dan", "dan@example.com")
    err = await code_of(accept(invites, token, "dan", "dan@example.com"))
    assert err == grpc.StatusCode.FAILED_PRECONDITION
    assert await code_of(accept(invites, token, "dave", "dan@example.com")) == grpc.StatusCode.FAILED_PRECONDITION


async def test_r6_email_must_match_case_insensitive(app: App, invites) -> None:
    token = (await invite(invites, "Dan@Example.COM")).results[0].token
    assert await code_of(accept(invites, token, "dan", "other@example.com")) == grpc.StatusCode.PERMISSION_DENIED
    done = await accept(invites, token, "dan", "DAN@example.com")
    assert done.invitation.status == pb.INVITATION_STATUS_ACCEPTED


async def test_r6_expired_revoked_rejected_tokens_change_nothing(app: App, invites) -> None:
    r = await invite(invites, "x1@example.com", "x2@example.com", "x3@example.com")
    (t1, i1), (t2, i2), (t3, _) = [(x.token, x.invitation.id) for x in r.results]
    await commit_rows(
        app.db, "acme", "test.expire", store.update(Invitation, {"id": i1}, expires_at=utcnow() - timedelta(1))
    )
    got = await invites.GetInvitation(pb.GetInvitationRequest(organization="acme", id=i1), metadata=as_user("alice"))
    assert got.invitation.status == pb.INVITATION_STATUS_EXPIRED
    await invites.RevokeInvitation(pb.RevokeInvitationRequest(organization="acme", id=i2), metadata=as_user("alice"))
    await invites.RejectInvitation(
        pb.RejectInvitationRequest(token=t3, user_id="x3", email="x3@example.com"), metadata=as_user("x3")
    )
    for token, user in ((t1, "x1"), (t2, "x2"), (t3, "x3")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await accept(invites, token, user, f"{user}@example.com")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert any(w in err.value.details() for w in ("expired", "revoked", "rejected"))
        assert token not in err.value.details()
    with app.db.read() as s:
        assert not list(s.scalars(select(Membership).where(Membership.user_id.in_(["x1", "x2", "x3"]))))
    unknown = "A" * 43
    assert await code_of(accept(invites, unknown, "x1", "x1@example.com")) == grpc.StatusCode.NOT_FOUND


async def test_r6_resend_replaces_the_token(app: App, invites) -> None:
    first = (await invite(invites, "dan@example.com")).results[0]
    again = await invites.ResendInvitation(
        pb.ResendInvitationRequest(organization="acme", id=first.invitation.id), metadata=as_user("alice")
    )
    assert again.token
    assert again.token != first.token
    assert again.revision > 0
    # The old token names no invitation any more.
    assert await code_of(accept(invites, first.token, "dan", "dan@example.com")) == grpc.StatusCode.NOT_FOUND
    await accept(invites, again.token, "dan", "dan@example.com")


async def test_r7_existing_member_reported_per_address(app: App, invites) -> None:
    await invite(invites, "pending@example.com")
    r = await invite(
        invites, "BOB@acme.test", "pending@example.com", "new@example.com", "not-an-email", "new@example.com"
    )
    assert [x.outcome for x in r.results] == [
        pb.INVITATION_OUTCOME_ALREADY_MEMBER,
        pb.INVITATION_OUTCOME_ALREADY_INVITED,
        INVITED,
        pb.INVITATION_OUTCOME_ERROR,
        pb.INVITATION_OUTCOME_ALREADY_INVITED,
    ]
    assert "emails[3]" in r.results[3].error
    again = await invite(invites, "bob@acme.test")
    assert again.revision == 0
    assert again.results[0].outcome == pb.INVITATION_OUTCOME_ALREADY_MEMBER


async def test_r8_only_admin_invites_admin(app: App, invites) -> None:
    # carol holds create:invitation through a custom role, but is no Admin.
    assert (await invite(invites, "m@example.com", by="carol")).results[0].outcome == INVITED
    assert (
        await code_of(invite(invites, "a@example.com", role="Admin", by="carol")) == grpc.StatusCode.PERMISSION_DENIED
    )
    assert await code_of(invite(invites, "a@example.com", by="bob")) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(invite(invites, "a@example.com", by="gina")) == grpc.StatusCode.NOT_FOUND
    r = await invite(invites, "a@example.com", role="Admin", by="alice")
    token = r.results[0].token
    await accept(invites, token, "adam", "a@example.com")
    with app.db.read() as s:
        assert s.get(Membership, ("acme", "adam")).org_role == "Admin"
    # Resending an Admin invitation is an Admin's call too.
    r = await invite(invites, "a2@example.com", role="Admin", by="alice")
    assert (
        await code_of(
            invites.ResendInvitation(
                pb.ResendInvitationRequest(organization="acme", id=r.results[0].invitation.id),
                metadata=as_user("carol"),
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    # R24: an Admin may not invite an Owner; a workspace role is no organization role at all.
    assert await code_of(invite(invites, "z@example.com", role="Owner")) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(invite(invites, "z@example.com", role="Viewer")) == grpc.StatusCode.INVALID_ARGUMENT


async def test_r10_member_limit_counts_pending_invitations(app: App, invites) -> None:
    # 3 members, limit 6: three pending invitations fill it.
    r = await invite(invites, "p1@example.com", "p2@example.com")
    assert await code_of(invite(invites, "p3@example.com", "p4@example.com")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    with app.db.read() as s:
        assert len(list(s.scalars(select(Invitation)))) == 2  # nothing written by the refused call
    await invite(invites, "p3@example.com")
    assert await code_of(invite(invites, "p4@example.com")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Accepting keeps the count; revoking frees a seat.
    await accept(invites, r.results[0].token, "p1", "p1@example.com")
    assert await code_of(invite(invites, "p4@example.com")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    await invites.RevokeInvitation(
        pb.RevokeInvitationRequest(organization="acme", id=r.results[1].invitation.id), metadata=as_user("alice")
    )
    assert (await invite(invites, "p4@example.com")).results[0].outcome == INVITED


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_r10_member_limit_holds_under_concurrent_invites(app: App, invites) -> None:
    calls = [invite(invites, f"race{i}@example.com") for i in range(12)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    ok = [o for o in outcomes if isinstance(o, pb.CreateInvitationsResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(ok) == 3
    assert len(refused) == 9
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    with app.db.read() as s:
        members = len(list(s.scalars(select(Membership).where(Membership.org_id == "acme"))))
        pending = len(list(s.scalars(select(Invitation).where(Invitation.status == "pending"))))
    assert members + pending == 6


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_r6_concurrent_accepts_exactly_one_succeeds(app: App, invites) -> None:
    for round_ in range(3):
        email = f"race{round_}@example.com"
        token = (await invite(invites, email)).results[0].token
        outcomes = await asyncio.gather(
            *(accept(invites, token, f"u{round_}-{i}", email) for i in range(6)), return_exceptions=True
        )
        ok = [o for o in outcomes if isinstance(o, pb.AcceptInvitationResponse)]
        assert len(ok) == 1
        assert {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)} == {
            grpc.StatusCode.FAILED_PRECONDITION
        }
        with app.db.read() as s:
            joined = list(s.scalars(select(Membership).where(Membership.user_id.like(f"u{round_}-%"))))
        assert len(joined) == 1


async def test_invitation_reads_are_paged_filtered_and_private(app: App, invites) -> None:
    await invite(invites, *(f"page{i}@example.com" for i in range(3)))
    seen, token = [], ""
    while True:
        page = await invites.ListInvitations(
            pb.ListInvitationsRequest(organization="acme", page_size=2, page_token=token), metadata=as_user("carol")
        )
        seen += [i.email for i in page.invitations]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"page{i}@example.com" for i in range(3)]
    assert (
        await code_of(invites.ListInvitations(pb.ListInvitationsRequest(organization="acme"), metadata=as_user("bob")))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await code_of(invites.ListInvitations(pb.ListInvitationsRequest(organization="acme"), metadata=as_user("gina")))
        == grpc.StatusCode.NOT_FOUND
    )
    for bad in (
        pb.ListInvitationsRequest(organization="acme", page_size=1001),
        pb.ListInvitationsRequest(organization="acme", page_token="!!"),
        pb.ListInvitationsRequest(organization="a c m e"),
    ):
        assert (
            await code_of(invites.ListInvitations(bad, metadata=as_user("alice"))) == grpc.StatusCode.INVALID_ARGUMENT
        )


async def test_invitation_audit_events_name_actor_and_target_without_secrets(app: App, invites) -> None:
    r = await invite(invites, "dan@example.com", "erin@example.com")
    (t1, _), (t2, i2) = [(x.token, x.invitation.id) for x in r.results]
    await accept(invites, t1, "dan", "dan@example.com")
    resent = await invites.ResendInvitation(
        pb.ResendInvitationRequest(organization="acme", id=i2), metadata=as_user("alice")
    )
    await invites.RejectInvitation(
        pb.RejectInvitationRequest(token=resent.token, email="erin@example.com"), metadata=as_user("erin")
    )
    with app.db.read() as s:
        events = [
            (e.event, e.actor, e.org_id, e.target, e.details)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.event.like("orgauthz.invitation.%")).order_by(AuditEvent.id)
            )
        ]
    assert [(e, a) for e, a, *_ in events] == [
        ("orgauthz.invitation.created", "user:alice"),
        ("orgauthz.invitation.created", "user:alice"),
        ("orgauthz.invitation.accepted", "user:dan"),
        ("orgauthz.invitation.resent", "user:alice"),
        ("orgauthz.invitation.rejected", "user:erin"),
    ]
    assert all(org == "acme" and target.startswith("invitation:") for _, _, org, target, _ in events)
    assert not any(t in str(events) for t in (t1, t2, resent.token))
