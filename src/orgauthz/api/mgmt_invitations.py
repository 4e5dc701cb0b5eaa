"""``orgauthz.v1.InvitationService``: bounds, actor, one call into services.invitations, back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.registry import register
from orgauthz.domain import bounds, rules
from orgauthz.errors import InvalidArgument
from orgauthz.services import invitations as inv
from orgauthz.services.context import Management
from orgauthz.services.secrets import SECRET_MAX
from orgauthz.v1 import invitations_pb2 as pb
from orgauthz.v1 import invitations_pb2_grpc as pb_grpc

_STATUS = {
    inv.Status.PENDING: pb.INVITATION_STATUS_PENDING,
    inv.Status.ACCEPTED: pb.INVITATION_STATUS_ACCEPTED,
    inv.Status.REJECTED: pb.INVITATION_STATUS_REJECTED,
    inv.Status.REVOKED: pb.INVITATION_STATUS_REVOKED,
    inv.Status.EXPIRED: pb.INVITATION_STATUS_EXPIRED,
}
_STATUS_IN = {v: k for k, v in _STATUS.items()}
_OUTCOME = {
    inv.Outcome.INVITED: pb.INVITATION_OUTCOME_INVITED,
    inv.Outcome.ALREADY_MEMBER: pb.INVITATION_OUTCOME_ALREADY_MEMBER,
    inv.Outcome.ALREADY_INVITED: pb.INVITATION_OUTCOME_ALREADY_INVITED,
    inv.Outcome.ERROR: pb.INVITATION_OUTCOME_ERROR,
}


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def to_pb(v: inv.InvitationView) -> pb.Invitation:
    return pb.Invitation(
        id=v.id,
        organization=v.org_id,
        email=v.email,
        org_role=v.org_role,
        status=_STATUS[v.status],
        invited_by=v.invited_by,
        accepted_by=v.accepted_by,
        expires_at=ts(v.expires_at),
        created_at=ts(v.created_at),
        updated_at=ts(v.updated_at),
    )


def _token(value: str) -> str:
    if not value:
        raise InvalidArgument("token", "is required")
    if len(value) > SECRET_MAX:
        raise InvalidArgument("token", f"must be at most {SECRET_MAX} characters")
    return value


class InvitationServicer(pb_grpc.InvitationServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, mgmt: Management, nudge: Any = None) -> None:
        self.mgmt = mgmt
        self.nudge = nudge  # wakes the outbox sender after a write that queued mail

    def _ttl(self, seconds: int) -> int:
        return inv.check_ttl("expires_in_seconds", seconds, self.mgmt.mail.invitation_ttl_s)

    @rpc
    async def CreateInvitations(
        self, request: pb.CreateInvitationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateInvitationsResponse:
        org = bounds.check_id("organization", request.organization)
        bounds.check_count("emails", len(request.emails), bounds.INVITE_BATCH_MAX)
        role = bounds.check_id("org_role", request.org_role) if request.org_role else rules.MEMBER
        ttl = self._ttl(request.expires_in_seconds)
        actor = await resolve_actor(context, self.mgmt)
        results, revision = await inv.create_invitations(
            self.mgmt, actor, org, list(request.emails), role=role, ttl_s=ttl, nudge=self.nudge
        )
        return pb.CreateInvitationsResponse(
            revision=revision,
            results=[
                pb.InvitationResult(
                    email=r.email,
                    outcome=_OUTCOME[r.outcome],
                    token=r.token,
                    error=r.error,
                    invitation=to_pb(r.invitation) if r.invitation else None,
                )
                for r in results
            ],
        )

    @rpc
    async def ListInvitations(
        self, request: pb.ListInvitationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInvitationsResponse:
        org = bounds.check_id("organization", request.organization)
        if request.status != pb.INVITATION_STATUS_UNSPECIFIED and request.status not in _STATUS_IN:
            raise InvalidArgument("status", "must be an InvitationStatus")
        size = bounds.check_page_size("page_size", request.page_size)
        after = bounds.decode_page_token("page_token", request.page_token)
        actor = await resolve_actor(context, self.mgmt)
        found, last = await inv.list_invitations(
            self.mgmt, actor, org, status=_STATUS_IN.get(request.status), page_size=size, after=after
        )
        return pb.ListInvitationsResponse(
            invitations=[to_pb(v) for v in found], next_page_token=bounds.encode_page_token(last) if last else ""
        )

    @rpc
    async def GetInvitation(
        self, request: pb.GetInvitationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInvitationResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        return pb.GetInvitationResponse(invitation=to_pb(await inv.get_invitation(self.mgmt, actor, org, ident)))

    @rpc
    async def RevokeInvitation(
        self, request: pb.RevokeInvitationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeInvitationResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        shown, revision = await inv.revoke_invitation(self.mgmt, actor, org, ident)
        return pb.RevokeInvitationResponse(invitation=to_pb(shown), revision=revision)

    @rpc
    async def ResendInvitation(
        self, request: pb.ResendInvitationRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResendInvitationResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        ttl = self._ttl(request.expires_in_seconds)
        actor = await resolve_actor(context, self.mgmt)
        shown, token, revision = await inv.resend_invitation(self.mgmt, actor, org, ident, ttl_s=ttl, nudge=self.nudge)
        return pb.ResendInvitationResponse(invitation=to_pb(shown), token=token, revision=revision)

    @rpc
    async def AcceptInvitation(
        self, request: pb.AcceptInvitationRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcceptInvitationResponse:
        token = _token(request.token)
        user = bounds.check_optional_id("user_id", request.user_id)
        email = bounds.check_email("email", request.email)
        actor = await resolve_actor(context, self.mgmt)
        shown, revision = await inv.accept_invitation(self.mgmt, actor, token=token, user_id=user, email=email)
        return pb.AcceptInvitationResponse(invitation=to_pb(shown), revision=revision)

    @rpc
    async def RejectInvitation(
        self, request: pb.RejectInvitationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectInvitationResponse:
        token = _token(request.token)
        user = bounds.check_optional_id("user_id", request.user_id)
        email = bounds.check_email("email", request.email)
        actor = await resolve_actor(context, self.mgmt)
        shown, revision = await inv.reject_invitation(self.mgmt, actor, token=token, user_id=user, email=email)
        return pb.RejectInvitationResponse(invitation=to_pb(shown), revision=revision)


@register("orgauthz.v1.InvitationService")
def _register(app: Any, server: grpc.aio.Server, mgmt: Management) -> None:
    sender = getattr(app, "outbox", None)
    nudge = sender.nudge if sender is not None else None
    pb_grpc.add_InvitationServiceServicer_to_server(InvitationServicer(mgmt, nudge), server)
