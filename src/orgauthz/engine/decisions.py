"""The decision operations behind ``AuthorizationService``: bounds, freshness, the answer.

:class:`Decisions` validates a request (INVALID_ARGUMENT naming the field), waits for
``min_revision`` (StaleRevision when the replica cannot reach it in time), resolves the
target (unknown: a plain deny) and asks the composed :class:`Authorizer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple, TypeVar

from orgauthz.domain import bounds
from orgauthz.domain import lines as L
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE
from orgauthz.engine.authorizer import Ask, Authorizer, Decision, answered_at
from orgauthz.engine.engine import ONLY, Engine, Plan
from orgauthz.engine.feed import ChangeFeed
from orgauthz.errors import InvalidArgument
from orgauthz.store import snapshots

T = TypeVar("T")
_VALID_MAX = 100_000  # questions remembered as valid; forgotten all at once when full


class Question(NamedTuple):
    """One decision request. A named tuple: a BatchCheck builds up to 1,000 of them, and a
    tuple is built in a third of the time a frozen dataclass takes."""

    subject: str
    workspace: str
    organization: str
    scope: str
    explain: bool = False
    obj: str = ""  # R26: deployment:<id>, work_pool:<id> or block:<id>; "" for none


class Decisions:
    def __init__(
        self, engine: Engine, authorizer: Authorizer, feed: ChangeFeed | None, *, min_revision_wait: float = 2.0
    ) -> None:
        self.engine = engine
        self.authorizer = authorizer
        self.feed = feed
        self.min_revision_wait = min_revision_wait
        self._valid: set[tuple[str, str, str, str, bool, str]] = set()  # questions found valid

    async def at_least(self, revision: int) -> None:
        """Waits, at most ``min_revision_wait``, until this replica may answer: it has applied
        the head revision found at start (SPEC §3; the in-memory cache, empty until then, is
        read before this) and ``revision``. StaleRevision (UNAVAILABLE) when it cannot."""
        if self.feed is not None and not self.feed.caught_up:
            await self.feed.until_caught_up(self.min_revision_wait)
        if self.feed is not None and self.feed.siblings is not None:
            # With workers: never older than a write another worker of this server returned.
            revision = max(revision, self.feed.siblings.head())
        if revision and self.engine.applied < revision:
            if self.feed is None:
                raise InvalidArgument("min_revision", "is ahead of the store")
            await self.feed.wait_for(revision, self.min_revision_wait)

    @staticmethod
    def target_level(workspace: str, organization: str, field: str = "") -> str:
        """Validates the target's syntax; returns its level. Resolve after waiting."""
        prefix = f"{field}." if field else ""
        if workspace and organization:
            raise InvalidArgument(f"{prefix}workspace", "give a workspace or an organization, not both")
        if workspace:
            bounds.check_id(f"{prefix}workspace", workspace)
            return WORKSPACE
        if organization:
            bounds.check_id(f"{prefix}organization", organization)
            return ORGANIZATION
        raise InvalidArgument(f"{prefix}workspace", "a workspace or an organization is required")

    def validate(self, q: Question, field: str = "") -> None:
        """INVALID_ARGUMENT naming the field (``items[i].scope``...) unless ``q`` is well formed.
        Questions found valid are remembered: about 1 µs a question, 38% of a warm
        BatchCheck(100) in process (bench/NOTES.md item 12)."""
        row = (q.subject, q.workspace, q.organization, q.scope, q.explain, q.obj)
        if row in self._valid:
            return
        self._validate(q, field)
        if len(self._valid) >= _VALID_MAX:
            self._valid = set()
        self._valid.add(row)  # a plain tuple of strings: the collector stops tracking it

    def _validate(self, q: Question, field: str) -> None:
        prefix = f"{field}." if field else ""
        bounds.check_subject(f"{prefix}subject", q.subject)
        level = self.target_level(q.workspace, q.organization, field)
        bounds.check_scope_name(f"{prefix}scope", q.scope)
        # A renamed id is accepted for one release (R21), decided as the id it became.
        if not self.engine.policy.is_scope(level, self.engine.policy.current_id(q.scope)):
            kind = "workspace scope" if level == WORKSPACE else "organization permission"
            raise InvalidArgument(f"{prefix}scope", f"unknown {kind} {q.scope!r}")
        if q.obj:
            self.check_object(q.obj, level, f"{prefix}object")

    @staticmethod
    def check_object(obj: str, level: str, field: str = "object") -> None:
        """R26: an object is named inside a workspace."""
        bounds.check_object(field, obj)
        if level != WORKSPACE:
            raise InvalidArgument(field, "an object is named inside a workspace, not an organization")

    def need(self, workspace: str, obj: str, scope: str) -> str:
        """The object node ``scope`` needs on ``obj`` ("" when no object or not governed)."""
        return L.object_need(self.engine.policy, workspace, obj, scope) if obj else ""

    def _ready(self) -> bool:
        """Whether this replica may answer without waiting (see :meth:`at_least`)."""
        feed = self.feed
        if feed is None:
            return True
        siblings = feed.siblings
        return feed.caught_up and (siblings is None or self.engine.applied >= siblings.head())

    async def check(self, q: Question, min_revision: int = 0) -> Decision:
        self.validate(q)
        if min_revision or not self._ready():
            await self.at_least(min_revision)
        scope = self.engine.policy.renamed.get(q.scope, q.scope)
        res = self.need(q.workspace, q.obj, scope) if q.obj else ""
        ask = Ask(q.subject, self.engine.resolve(q.workspace, q.organization), scope, q.explain, res)
        decision = self.authorizer.try_cached(ask)
        if decision is None:
            (decision,) = await self.authorizer.decide([ask])
        return decision

    async def batch(self, rows: Sequence[tuple[str, str, str, str, bool, str]], min_revision: int) -> list[Decision]:
        """Decides each row ``(subject, workspace, organization, scope, explain, object)`` (a
        :class:`Question` is one), in order. Every row is validated before anything is
        decided (INVALID_ARGUMENT names ``items[i]``)."""
        bounds.check_count("items", len(rows), bounds.BATCH_MAX)
        if not self._valid.issuperset(rows):  # one pass in C when every row was seen before
            for i, row in enumerate(rows):
                self.validate(Question._make(row), f"items[{i}]")
        if min_revision or not self._ready():
            await self.at_least(min_revision)
        resolve, renamed, need = self.engine.resolve, self.engine.policy.renamed, self.need
        return await self.authorizer.decide(
            [
                Ask(s, resolve(w, o), renamed.get(sc, sc), e, need(w, ob, renamed.get(sc, sc)) if ob else "")
                for s, w, o, sc, e, ob in rows
            ]
        )

    async def scopes(
        self, subject: str, workspace: str, organization: str, min_revision: int = 0, obj: str = ""
    ) -> tuple[list[str], int]:
        """The subject's scopes in the workspace (on ``obj``, when given: R26) or its
        permissions in the organization."""
        bounds.check_subject("subject", subject)
        level = self.target_level(workspace, organization)
        if obj:
            self.check_object(obj, level)
        await self.at_least(min_revision)
        target = self.engine.resolve(workspace=workspace, organization=organization)
        if target is None or not await self.engine.ensure_loaded(target.org_id):
            return [], self.engine.applied
        return self.engine.scopes(subject, target, obj), answered_at(self.engine, target.org_id)

    async def plan(
        self, subject: str, workspace: str, kind: str, scope: str, min_revision: int = 0
    ) -> tuple[Plan, int]:
        """PlanObjects: which objects of ``kind`` the subject may use ``scope`` on (R26)."""
        bounds.check_subject("subject", subject)
        bounds.check_id("workspace", workspace)
        if kind not in bounds.OBJECT_KINDS:
            raise InvalidArgument("kind", f"must be one of {', '.join(bounds.OBJECT_KINDS)}")
        bounds.check_scope_name("scope", scope)
        scope = self.engine.policy.current_id(scope)
        if not self.engine.policy.is_scope(WORKSPACE, scope):
            raise InvalidArgument("scope", f"unknown workspace scope {scope!r}")
        await self.at_least(min_revision)
        target = self.engine.resolve(workspace=workspace)
        if target is None or not await self.engine.ensure_loaded(target.org_id):
            return Plan(ONLY, ()), self.engine.applied
        return self.engine.plan(subject, target, workspace, kind, scope), answered_at(self.engine, target.org_id)

    async def accessible(
        self, subject: str, page_size: int, page_token: str, min_revision: int = 0
    ) -> tuple[list[tuple[str, str, list[str]]], str, int]:
        """Workspaces where the subject holds a scope: ``[(workspace, org, scopes)]``, next token."""
        kind, ident = bounds.check_subject("subject", subject)
        size = bounds.check_page_size("page_size", page_size)
        after = _decode_token(page_token)
        await self.at_least(min_revision)
        orgs = await asyncio.to_thread(snapshots.orgs_of_subject, self.engine.db, kind, ident)
        # Workspace grants alone never outlive membership (R4), so the subject's organizations
        # bound where it can go.
        found: list[tuple[str, str, list[str]]] = []
        # The answer reflects every revision up to the lowest one any organization was read at
        # (organizations are read one after another, with awaits between them).
        read_at: list[int] = []
        for org in orgs:
            if not await self.engine.ensure_loaded(org):
                continue
            read_at.append(answered_at(self.engine, org))
            for ws in sorted(self.engine.org_workspaces.get(org, ())):
                if (org, ws) <= after:
                    continue
                target = self.engine.resolve(workspace=ws)
                if target is None:
                    continue
                scopes = self.engine.scopes(subject, target)
                if scopes:
                    found.append((ws, org, scopes))
                    if len(found) > size:
                        break
            if len(found) > size:
                break
        token = ""
        if len(found) > size:
            found = found[:size]
            token = _encode_token(found[-1][1], found[-1][0])
        return found, token, min(read_at, default=self.engine.applied)


# ListAccessibleWorkspaces pages with the token every list uses (bounds), its key
# "<organization>/<workspace>": "/" is in no id.
def _encode_token(org: str, ws: str) -> str:
    return bounds.encode_page_token(f"{org}/{ws}")


def _decode_token(token: str) -> tuple[str, str]:
    """``(organization, workspace)`` the token resumes after; ``("", "")`` for the first page."""
    key = bounds.decode_page_token("page_token", token)
    if not key:
        return ("", "")
    org, sep, ws = key.partition("/")
    if not (sep and org and ws):  # another list's token
        raise InvalidArgument("page_token", "is not a token this server issued")
    return (org, ws)
