"""Teams: groups of members and service accounts that hold workspace roles (R25, R18).

A team's workspace roles are ordinary grants with the subject ``team:<id>`` (the access
service gives, changes and revokes them). Each member is written as holding the team in
every workspace where the team has a role (``lines.team_links``), so Casbin resolves
``member -> team -> role`` inside the workspace's domain and a decision stays one
enforcement. Every write here is one revision; adding or removing members writes or removes
their team links in the same revision, so the next Check reflects it (SPEC §3).

Only organization Owners and Admins create, change and delete teams and their membership,
whatever a custom organization role holds (R25: a member who could add itself to a team
would take the team's roles); Members read them (``read:team``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, literal, select
from sqlalchemy.orm import Session

from orgauthz.domain import bounds, rules
from orgauthz.domain import lines as L
from orgauthz.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from orgauthz.services import acl_removal
from orgauthz.services.context import Actor, Management, audit
from orgauthz.store import base as store
from orgauthz.store.base import Decision, Locked, Read
from orgauthz.store.models import Membership, Organization, ServiceAccount, Team, TeamMember, WorkspaceGrant

MEMBERS_PER_CALL_MAX = 1000


@dataclass(frozen=True)
class TeamView:
    id: str
    org_id: str
    name: str
    description: str
    member_count: int
    created_at: datetime


# What the writes read under the write lock, built once with bindparams.
_TEAM = select(Team.id, Team.org_id, Team.name, Team.description, Team.created_at).where(
    Team.id == bindparam("team"), Team.org_id == bindparam("org")
)
_CREATE_CHECKS = select(
    Organization.max_teams,
    select(func.count()).select_from(Team).where(Team.org_id == bindparam("org")).scalar_subquery().label("teams"),
    exists().where(Team.id == bindparam("team")).label("id_taken"),
    exists().where(Team.org_id == bindparam("org"), Team.name == bindparam("name")).label("name_taken"),
).where(Organization.id == bindparam("org"))
_NAME_TAKEN = select(Team.id).where(Team.org_id == bindparam("org"), Team.name == bindparam("name"))
_MEMBERS = select(TeamMember.subject).where(TeamMember.team_id == bindparam("team"))
# The workspaces where the team holds a role, with the role.
_GRANTS = select(WorkspaceGrant.workspace_id, WorkspaceGrant.role).where(
    WorkspaceGrant.subject == literal("team:") + bindparam("team", type_=Team.id.type)
)
# Which of the named users and service accounts belong to the organization (also read by the
# ACL service for its entries).
USERS_IN_ORG = select(Membership.user_id).where(
    Membership.org_id == bindparam("org"), Membership.user_id.in_(bindparam("users", expanding=True))
)
SAS_IN_ORG = select(ServiceAccount.id).where(
    ServiceAccount.org_id == bindparam("org"), ServiceAccount.id.in_(bindparam("sas", expanding=True))
)


async def _require_manager(mgmt: Management, actor: Actor, org_id: str, permission: str) -> None:
    """``permission`` and R25: an organization Owner or Admin."""
    await mgmt.require(actor, org_id, permission)
    if not rules.is_admin(await mgmt.org_role_of(actor, org_id)):
        raise PermissionDenied("only organization Owners and Admins change teams and their members (R25)")


def _team(at: Locked, team_id: str) -> Any:
    found = at.one("team")
    if found is None:
        raise NotFound(f"team {team_id!r} not found")
    return found


def _view(row: Any, member_count: int) -> TeamView:
    return TeamView(row.id, row.org_id, row.name, row.description or "", member_count, row.created_at)


def _team_reads(org_id: str, team_id: str) -> dict[str, Read]:
    return {
        "team": (_TEAM, {"team": team_id, "org": org_id}),
        "members": (_MEMBERS, {"team": team_id}),
        "grants": (_GRANTS, {"team": team_id}),
    }


def check_subjects(field: str, subjects: Sequence[str]) -> list[str]:
    """1-1,000 ``user:<id>`` or ``service_account:<id>``, no duplicates (InvalidArgument
    naming ``field[i]``)."""
    bounds.check_count(field, len(subjects), MEMBERS_PER_CALL_MAX)
    seen: set[str] = set()
    for i, subject in enumerate(subjects):
        bounds.check_subject(f"{field}[{i}]", subject)
        if subject in seen:
            raise InvalidArgument(f"{field}[{i}]", f"{subject} is named twice")
        seen.add(subject)
    return list(subjects)


# -- writes -------------------------------------------------------------------------------


async def create_team(
    mgmt: Management, actor: Actor, org_id: str, *, team_id: str, name: str, description: str
) -> tuple[TeamView, int]:
    """create:team, by an Owner or Admin. AlreadyExists naming ``id`` or ``name``;
    LimitExceeded at ``max_teams`` (counted under the write lock, R10)."""
    await _require_manager(mgmt, actor, org_id, "create:team")
    team_id = team_id or f"team-{secrets.token_hex(8)}"
    reads: dict[str, Read] = {"checks": (_CREATE_CHECKS, {"org": org_id, "team": team_id, "name": name})}

    def decide(at: Locked) -> Decision[TeamView]:
        checks = at.one("checks")
        if checks is None:
            raise NotFound(f"organization {org_id!r} not found")
        if checks.id_taken:
            raise AlreadyExists(f"id: team id {team_id!r} is taken")
        if checks.name_taken:
            raise AlreadyExists(f"name: {name!r} is taken by another team of the organization")
        rules.check_limit("teams", used=int(checks.teams), adding=1, limit=int(checks.max_teams))
        row = {"id": team_id, "org_id": org_id, "name": name, "description": description, "created_at": at.now}
        return Decision(
            TeamView(team_id, org_id, name, description, 0, at.now),
            writes=[store.insert(Team, row)],
            audits=[audit(actor, "orgauthz.team.created", L.team_subject(team_id), details={"name": name})],
        )

    return await mgmt.write(org_id, "team.created", reads, decide)


async def update_team(
    mgmt: Management, actor: Actor, org_id: str, team_id: str, *, name: str, description: str
) -> tuple[TeamView, int]:
    """update:team, by an Owner or Admin. AlreadyExists naming ``name``."""
    await _require_manager(mgmt, actor, org_id, "update:team")
    reads = {**_team_reads(org_id, team_id), "name": (_NAME_TAKEN, {"org": org_id, "name": name})}

    def decide(at: Locked) -> Decision[TeamView]:
        row = _team(at, team_id)
        other = at.one("name")
        if other is not None and other.id != team_id:
            raise AlreadyExists(f"name: {name!r} is taken by another team of the organization")
        before = {"name": row.name, "description": row.description}
        return Decision(
            TeamView(team_id, org_id, name, description, len(at["members"]), row.created_at),
            writes=[store.update(Team, {"id": team_id}, name=name, description=description)],
            audits=[
                audit(
                    actor,
                    "orgauthz.team.updated",
                    L.team_subject(team_id),
                    details={"from": before, "to": {"name": name, "description": description}},
                )
            ],
        )

    return await mgmt.write(org_id, "team.updated", reads, decide)


async def delete_team(mgmt: Management, actor: Actor, org_id: str, team_id: str) -> int:
    """delete:team, by an Owner or Admin: the team, its membership and its workspace grants
    go in one revision; the next Check through it is denied (R19, R25)."""
    await _require_manager(mgmt, actor, org_id, "delete:team")
    subject = L.team_subject(team_id)

    def decide(at: Locked) -> Decision[None]:
        row = _team(at, team_id)
        members = [str(m.subject) for m in at["members"]]
        grants = [(str(ws), str(role)) for ws, role in at["grants"]]
        acl_writes, acl_lines = acl_removal.entries_removal(mgmt.policy, at, org_id, subject)
        lines = [
            *(L.grant_line(subject, ws, role) for ws, role in grants),
            *L.team_links(members, team_id, [ws for ws, _ in grants]),
            *L.team_member_lines(org_id, team_id, members),
            *acl_lines,
        ]
        return Decision(
            None,
            # Children first: the members reference the team.
            writes=[
                *acl_writes,
                store.delete(WorkspaceGrant, org_id=org_id, subject=subject),
                store.delete(TeamMember, team_id=team_id),
                store.delete(Team, id=team_id),
            ],
            audits=[
                audit(
                    actor,
                    "orgauthz.team.deleted",
                    subject,
                    details={"name": row.name, "members": len(members), "grants_removed": len(grants)},
                )
            ],
            change=at.change(remove=lines),
        )

    reads = {**_team_reads(org_id, team_id), **acl_removal.naming_reads(org_id, subject)}
    _, revision = await mgmt.write(org_id, "team.deleted", reads, decide)
    return revision


async def add_members(
    mgmt: Management, actor: Actor, org_id: str, team_id: str, subjects: Sequence[str]
) -> tuple[int, int]:
    """update:team, by an Owner or Admin: up to 1,000 users who are members and service
    accounts of the organization (FailedPrecondition naming ``subjects[i]`` otherwise, R16),
    in one revision. Returns how many were new, and the revision."""
    await _require_manager(mgmt, actor, org_id, "update:team")
    users = [s.removeprefix("user:") for s in subjects if s.startswith("user:")]
    sas = [s.removeprefix("service_account:") for s in subjects if s.startswith("service_account:")]
    reads: dict[str, Read] = {
        **_team_reads(org_id, team_id),
        "users": (USERS_IN_ORG, {"org": org_id, "users": users}),
        "sas": (SAS_IN_ORG, {"org": org_id, "sas": sas}),
    }

    def decide(at: Locked) -> Decision[int]:
        _team(at, team_id)
        in_org = {f"user:{r.user_id}" for r in at["users"]} | {f"service_account:{r.id}" for r in at["sas"]}
        for i, subject in enumerate(subjects):
            if subject not in in_org:
                raise FailedPrecondition(
                    f"subjects[{i}]: {subject} is not a member or service account of the organization (R16, R25)"
                )
        held = {str(m.subject) for m in at["members"]}
        new = [s for s in subjects if s not in held]
        workspaces = [str(ws) for ws, _ in at["grants"]]
        rows = [{"team_id": team_id, "subject": s, "org_id": org_id, "created_at": at.now} for s in new]
        return Decision(
            len(new),
            writes=[store.insert(TeamMember, row) for row in rows],
            # One revision, one event (R25), naming every member it added.
            audits=[audit(actor, "orgauthz.team-membership.created", L.team_subject(team_id), details={"added": new})],
            change=at.change(add=[*L.team_links(new, team_id, workspaces), *L.team_member_lines(org_id, team_id, new)]),
        )

    return await mgmt.write(org_id, "team-membership.created", reads, decide)


async def remove_members(
    mgmt: Management, actor: Actor, org_id: str, team_id: str, subjects: Sequence[str]
) -> tuple[int, int]:
    """update:team, by an Owner or Admin; in one revision, after which no Check allows anything
    through the team to them (R25). Returns how many were members, and the revision."""
    await _require_manager(mgmt, actor, org_id, "update:team")

    def decide(at: Locked) -> Decision[int]:
        _team(at, team_id)
        held = {str(m.subject) for m in at["members"]}
        gone = [s for s in subjects if s in held]
        workspaces = [str(ws) for ws, _ in at["grants"]]
        return Decision(
            len(gone),
            writes=[store.delete(TeamMember, team_id=team_id, subject=s) for s in gone],
            audits=[
                audit(actor, "orgauthz.team-membership.deleted", L.team_subject(team_id), details={"removed": gone})
            ],
            change=at.change(
                remove=[*L.team_links(gone, team_id, workspaces), *L.team_member_lines(org_id, team_id, gone)]
            ),
        )

    return await mgmt.write(org_id, "team-membership.deleted", _team_reads(org_id, team_id), decide)


# -- reads ---------------------------------------------------------------------------------


def _counts(s: Session, team_ids: Sequence[str]) -> dict[str, int]:
    if not team_ids:
        return {}
    q = select(TeamMember.team_id, func.count()).where(TeamMember.team_id.in_(team_ids)).group_by(TeamMember.team_id)
    return {str(t): int(n) for t, n in s.execute(q).all()}


async def get_team(mgmt: Management, actor: Actor, org_id: str, team_id: str) -> TeamView:
    """read:team; NotFound for another organization's team."""
    await mgmt.require(actor, org_id, "read:team")

    def read(s: Session) -> TeamView:
        row = s.execute(_TEAM, {"team": team_id, "org": org_id}).first()
        if row is None:
            raise NotFound(f"team {team_id!r} not found")
        return _view(row, _counts(s, [team_id]).get(team_id, 0))

    return await mgmt.read(read)


async def list_teams(
    mgmt: Management, actor: Actor, org_id: str, *, page_size: int, after: str
) -> tuple[list[TeamView], str]:
    """read:team; ordered by id."""
    await mgmt.require(actor, org_id, "read:team")

    def read(s: Session) -> tuple[list[TeamView], str]:
        q = select(Team).where(Team.org_id == org_id)
        if after:
            q = q.where(Team.id > after)
        rows = list(s.scalars(q.order_by(Team.id).limit(page_size + 1)))
        token = rows[page_size - 1].id if len(rows) > page_size else ""
        page = rows[:page_size]
        counts = _counts(s, [t.id for t in page])
        return [_view(t, counts.get(t.id, 0)) for t in page], token

    return await mgmt.read(read)


async def list_members(
    mgmt: Management, actor: Actor, org_id: str, team_id: str, *, page_size: int, after: str
) -> tuple[list[str], str]:
    """read:team; ordered by subject."""
    await mgmt.require(actor, org_id, "read:team")

    def read(s: Session) -> tuple[list[str], str]:
        if s.execute(_TEAM, {"team": team_id, "org": org_id}).first() is None:
            raise NotFound(f"team {team_id!r} not found")
        q = select(TeamMember.subject).where(TeamMember.team_id == team_id)
        if after:
            q = q.where(TeamMember.subject > after)
        found = [str(x) for x in s.scalars(q.order_by(TeamMember.subject).limit(page_size + 1))]
        token = found[page_size - 1] if len(found) > page_size else ""
        return found[:page_size], token

    return await mgmt.read(read)


async def subject_teams(mgmt: Management, actor: Actor, org_id: str, subject: str) -> list[TeamView]:
    """read:team; the teams ``subject`` belongs to, ordered by id."""
    await mgmt.require(actor, org_id, "read:team")

    def read(s: Session) -> list[TeamView]:
        q = (
            select(Team)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(TeamMember.org_id == org_id, TeamMember.subject == subject)
            .order_by(Team.id)
        )
        rows = list(s.scalars(q))
        counts = _counts(s, [t.id for t in rows])
        return [_view(t, counts.get(t.id, 0)) for t in rows]

    return await mgmt.read(read)
