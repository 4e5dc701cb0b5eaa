"""What every management operation shares: the actor, authorization and the write path.

Authorization goes through the decision engine itself (R2, R8, R16): an actor may do
what its organization permissions (``create:invitation``...) or its workspace scopes
(``manage_workspace_users``...) allow. An actor who is not in the organization gets
NotFound, never PermissionDenied, so nothing of another organization is confirmed to exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from orgauthz.domain import lines as L
from orgauthz.domain import rules
from orgauthz.domain.changes import Audit, ChangeSet
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.engine import Target
from orgauthz.engine.view import EngineView
from orgauthz.errors import NotFound, PermissionDenied
from orgauthz.store.base import Decide, Read, Store

if TYPE_CHECKING:
    from orgauthz.services.outbox import Mail

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who a management call acts for: a user asserted by the authenticated caller, or a
    service account (``org_id`` is then its organization) or user that presented its own
    API key (``by_key``)."""

    subject: str
    org_id: str = ""
    by_key: bool = False

    @property
    def is_user(self) -> bool:
        return self.subject.startswith("user:")

    @property
    def id(self) -> str:
        return self.subject.partition(":")[2]


@dataclass(frozen=True)
class Authority:
    """An actor's standing in a workspace or its organization, for R28 (no escalation)."""

    is_admin: bool  # an organization Owner or Admin: not limited (R2)
    scopes: frozenset[str]  # the scopes or permissions it holds there (empty for Admins: not needed)


class Feed(Protocol):
    """What a write needs of the change feed (:class:`~orgauthz.engine.feed.ChangeFeed`)."""

    async def written_here(self, revision: int, change: ChangeSet) -> None:
        """Announces the committed revision and applies its change to this replica's engine."""


class Management:
    """Shared by all management services; one per server."""

    def __init__(self, *, store: Store, engine: EngineView, feed: Feed, policy: PolicySet, mail: Mail) -> None:
        self.store = store
        self.engine = engine
        self.feed = feed
        self.policy = policy
        self.mail = mail  # the part of the settings the services use

    # -- authorization ------------------------------------------------------------

    async def is_member(self, actor: Actor, org_id: str) -> bool:
        return await self._org_roles(actor, org_id) is not None

    async def org_role_of(self, actor: Actor, org_id: str) -> str | None:
        """The actor's built-in or custom organization role, per the engine (None: not a
        member). A service account's role is never Admin (R11)."""
        roles = await self._org_roles(actor, org_id)
        named = [r.removeprefix(L.org_role_name("")) for r in roles or () if r != L.MEMBER]
        return named[0] if named else None

    async def _org_roles(self, actor: Actor, org_id: str) -> tuple[str, ...] | None:
        """The actor's direct lines in the organization's domain, when it is a member."""
        if actor.org_id and actor.org_id != org_id:
            return None
        target = self.engine.resolve(organization=org_id)
        if target is None or not await self.engine.ensure_loaded(org_id):
            return None
        roles = self.engine.direct_roles(org_id, actor.subject, target.domain)
        return roles if roles is not None and L.MEMBER in roles else None

    async def authority(self, actor: Actor, org_id: str, workspace: str = "") -> Authority:
        """What R28 limits a member by: whether it is an organization Owner or Admin, and the
        scopes it holds in ``workspace`` (empty: the organization permissions it holds), per
        the engine."""
        if rules.is_admin(await self.org_role_of(actor, org_id)):
            return Authority(True, frozenset())
        target = self.engine.resolve(workspace=workspace, organization="" if workspace else org_id)
        if target is None or target.org_id != org_id or not await self.engine.ensure_loaded(org_id):
            return Authority(False, frozenset())
        return Authority(False, frozenset(self.engine.scopes(actor.subject, target)))

    async def allowed(self, actor: Actor, org_id: str, permission: str, workspace: str = "") -> bool:
        """Whether the actor holds ``permission`` in the organization (or the workspace scope)."""
        target: Target | None
        if workspace:
            target = self.engine.resolve(workspace=workspace)
            if target is None or target.org_id != org_id:
                return False
        else:
            target = self.engine.resolve(organization=org_id)
        if target is None or (actor.org_id and actor.org_id != org_id):
            return False
        if not await self.engine.ensure_loaded(org_id):
            return False
        return self.engine.decide(actor.subject, target, permission)

    async def require_member(self, actor: Actor, org_id: str) -> None:
        """NotFound unless the actor belongs to the organization (no existence leak)."""
        if not await self.is_member(actor, org_id):
            raise NotFound(f"organization {org_id!r} not found")

    async def require(self, actor: Actor, org_id: str, permission: str, workspace: str = "") -> None:
        """NotFound outside the organization; PermissionDenied without the permission."""
        await self.require_member(actor, org_id)
        if not await self.allowed(actor, org_id, permission, workspace):
            raise PermissionDenied(
                f"{actor.subject} may not {permission}" + (f" in workspace {workspace!r}" if workspace else "")
            )

    async def require_any(self, actor: Actor, org_id: str, checks: list[tuple[str, str]]) -> None:
        """Like :meth:`require`, satisfied by any ``(permission, workspace)`` pair."""
        await self.require_member(actor, org_id)
        for permission, workspace in checks:
            if await self.allowed(actor, org_id, permission, workspace):
                return
        raise PermissionDenied(f"{actor.subject} may not do this")

    # -- writes -------------------------------------------------------------------

    async def write(self, org_id: str, kind: str, reads: Mapping[str, Read], decide: Decide[T]) -> tuple[T, int]:
        """Commits one write (see Store.commit): ``reads`` run under the write lock and
        ``decide`` turns their rows into a Decision. Returns its result and revision.

        After it returns, the change is applied to this replica's engine, so a Check here
        reflects it at once (SPEC §3).
        """
        done = await self.store.commit(org_id, kind, reads, decide)
        await self.feed.written_here(done.revision, done.change)
        return done.result, done.revision

    async def read(self, body: Callable[[Any], T]) -> T:
        """Runs ``body(session)`` on a read snapshot, in a thread."""

        def run() -> T:
            with self.store.read() as s:
                return body(s)

        return await asyncio.to_thread(run)


def audit(
    actor: Actor,
    event: str,
    target: str,
    *,
    workspace: str | None = None,
    details: dict[str, Any] | None = None,
    org_id: str = "",
) -> Audit:
    """The audit event ``orgauthz.<resource>.<action>`` of a decision. Never pass secrets."""
    return Audit(actor.subject, event, target, workspace, details or {}, org_id)
