"""``orgauthz.v1.AuditService``: thin translation around :mod:`orgauthz.services.audit`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import grpc
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_organizations import timestamp
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.errors import InvalidArgument
from orgauthz.services import audit as svc
from orgauthz.services.context import Management
from orgauthz.store.models import AuditEvent
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pb_grpc

EVENT_MAX: Final = 96
_EVENT_RE: Final = re.compile(r"[a-z0-9._-]{1,96}")
_MIN_SECONDS: Final = -62135596800  # 0001-01-01T00:00:00Z, protobuf's Timestamp range
_MAX_SECONDS: Final = 253402300799  # 9999-12-31T23:59:59Z


def _time(field: str, request: Any) -> datetime | None:
    if not request.HasField(field):
        return None
    ts: Timestamp = getattr(request, field)
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS) or not (0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgument(field, "must be a timestamp between years 1 and 9999")
    value: datetime = ts.ToDatetime(tzinfo=UTC)
    return value


def _filter(request: pb.ListAuditEventsRequest) -> svc.AuditFilter:
    actor = request.actor
    if actor and actor != "platform":
        kind, ident = bounds.check_subject("actor", actor)
        actor = f"{kind}:{ident}"
    if request.event and not _EVENT_RE.fullmatch(request.event):
        raise InvalidArgument("event", f"must be an event name of at most {EVENT_MAX} characters")
    workspace = bounds.check_optional_id("workspace", request.workspace)
    return svc.AuditFilter(
        actor=actor,
        event=request.event,
        workspace=workspace,
        start=_time("start_time", request),
        end=_time("end_time", request),
    )


def event(e: AuditEvent) -> pb.AuditEvent:
    details = Struct()
    details.update(e.details or {})
    return pb.AuditEvent(
        id=e.id,
        organization=e.org_id,
        workspace=e.workspace_id or "",
        actor=e.actor,
        event=e.event,
        target=e.target,
        details=details,
        revision=e.revision,
        occur_time=timestamp(e.occurred_at),
    )


def _before(token: str) -> int:
    key = bounds.decode_page_token("page_token", token)
    if not key:
        return 0
    if not (key.isascii() and key.isdigit()) or len(key) > 19:  # "²".isdigit(), yet int("²") raises
        raise InvalidArgument("page_token", "is not a token this server issued")
    return int(key)


class AuditServicer(pb_grpc.AuditServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, management: Management) -> None:
        self.m = management

    @rpc
    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        actor = await resolve_actor(context, self.m)
        rows, resume = await svc.list_events(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            _filter(request),
            page_size=bounds.check_page_size("page_size", request.page_size),
            before=_before(request.page_token),
        )
        return pb.ListAuditEventsResponse(
            events=[event(e) for e in rows], next_page_token=bounds.encode_page_token(str(resume)) if resume else ""
        )


@register(pb.DESCRIPTOR.services_by_name["AuditService"].full_name)
def _register(app: Any, server: grpc.aio.Server, management: Management) -> None:
    pb_grpc.add_AuditServiceServicer_to_server(AuditServicer(management), server)
