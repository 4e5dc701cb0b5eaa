"""The audit log, read back: newest first, with filters (needs ``read:audit_event``).

Every write records ``orgauthz.<resource>.<action>`` in its own transaction; this module
reads those events back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from orgauthz.services.context import Actor, Management
from orgauthz.store.models import AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    """Empty fields do not filter. ``start`` is inclusive, ``end`` exclusive (UTC)."""

    actor: str = ""
    event: str = ""
    workspace: str = ""
    start: datetime | None = None
    end: datetime | None = None


async def list_events(
    mgmt: Management, actor: Actor, org_id: str, flt: AuditFilter, *, page_size: int, before: int
) -> tuple[list[AuditEvent], int]:
    """One page of events with ``id < before`` (0: from the newest); returns the page and
    the id to resume before (0 at the end)."""
    await mgmt.require(actor, org_id, "read:audit_event")
    q = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if before:
        q = q.where(AuditEvent.id < before)
    if flt.actor:
        q = q.where(AuditEvent.actor == flt.actor)
    if flt.event:
        q = q.where(AuditEvent.event == flt.event)
    if flt.workspace:
        q = q.where(AuditEvent.workspace_id == flt.workspace)
    if flt.start is not None:
        q = q.where(AuditEvent.occurred_at >= flt.start)
    if flt.end is not None:
        q = q.where(AuditEvent.occurred_at < flt.end)
    rows: list[AuditEvent] = await mgmt.read(
        lambda s: list(s.scalars(q.order_by(AuditEvent.id.desc()).limit(page_size + 1)))
    )
    resume = int(rows[page_size - 1].id) if len(rows) > page_size else 0
    return rows[:page_size], resume
