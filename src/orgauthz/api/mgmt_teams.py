"""``orgauthz.v1.TeamService``: bounds, actor, one call into services.teams, back (R25)."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_invitations import ts
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.services import teams
from orgauthz.services.context import Management
from orgauthz.v1 import teams_pb2 as pb
from orgauthz.v1 import teams_pb2_grpc as pb_grpc


def to_pb(v: teams.TeamView) -> pb.Team:
    return pb.Team(
        id=v.id,
        organization=v.org_id,
        name=v.name,
        description=v.description,
        member_count=v.member_count,
        created_at=ts(v.created_at),
    )


class TeamServicer(pb_grpc.TeamServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, mgmt: Management) -> None:
        self.mgmt = mgmt

    @rpc
    async def CreateTeam(
        self, request: pb.CreateTeamRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTeamResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_optional_id("id", request.id)
        name = bounds.check_name("name", request.name)
        description = bounds.check_description("description", request.description)
        actor = await resolve_actor(context, self.mgmt)
        view, revision = await teams.create_team(
            self.mgmt, actor, org, team_id=ident, name=name, description=description
        )
        return pb.CreateTeamResponse(team=to_pb(view), revision=revision)

    @rpc
    async def GetTeam(self, request: pb.GetTeamRequest, context: grpc.aio.ServicerContext) -> pb.GetTeamResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        return pb.GetTeamResponse(team=to_pb(await teams.get_team(self.mgmt, actor, org, ident)))

    @rpc
    async def ListTeams(self, request: pb.ListTeamsRequest, context: grpc.aio.ServicerContext) -> pb.ListTeamsResponse:
        org = bounds.check_id("organization", request.organization)
        size = bounds.check_page_size("page_size", request.page_size)
        after = bounds.decode_page_token("page_token", request.page_token)
        actor = await resolve_actor(context, self.mgmt)
        found, last = await teams.list_teams(self.mgmt, actor, org, page_size=size, after=after)
        return pb.ListTeamsResponse(
            teams=[to_pb(v) for v in found], next_page_token=bounds.encode_page_token(last) if last else ""
        )

    @rpc
    async def UpdateTeam(
        self, request: pb.UpdateTeamRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateTeamResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        name = bounds.check_name("name", request.name)
        description = bounds.check_description("description", request.description)
        actor = await resolve_actor(context, self.mgmt)
        view, revision = await teams.update_team(self.mgmt, actor, org, ident, name=name, description=description)
        return pb.UpdateTeamResponse(team=to_pb(view), revision=revision)

    @rpc
    async def DeleteTeam(
        self, request: pb.DeleteTeamRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTeamResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        actor = await resolve_actor(context, self.mgmt)
        return pb.DeleteTeamResponse(revision=await teams.delete_team(self.mgmt, actor, org, ident))

    @rpc
    async def AddTeamMembers(
        self, request: pb.AddTeamMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddTeamMembersResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        subjects = teams.check_subjects("subjects", list(request.subjects))
        actor = await resolve_actor(context, self.mgmt)
        added, revision = await teams.add_members(self.mgmt, actor, org, ident, subjects)
        return pb.AddTeamMembersResponse(added=added, revision=revision)

    @rpc
    async def RemoveTeamMembers(
        self, request: pb.RemoveTeamMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveTeamMembersResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        subjects = teams.check_subjects("subjects", list(request.subjects))
        actor = await resolve_actor(context, self.mgmt)
        removed, revision = await teams.remove_members(self.mgmt, actor, org, ident, subjects)
        return pb.RemoveTeamMembersResponse(removed=removed, revision=revision)

    @rpc
    async def ListTeamMembers(
        self, request: pb.ListTeamMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTeamMembersResponse:
        org = bounds.check_id("organization", request.organization)
        ident = bounds.check_id("id", request.id)
        size = bounds.check_page_size("page_size", request.page_size)
        after = bounds.decode_page_token("page_token", request.page_token)
        actor = await resolve_actor(context, self.mgmt)
        found, last = await teams.list_members(self.mgmt, actor, org, ident, page_size=size, after=after)
        return pb.ListTeamMembersResponse(
            subjects=found, next_page_token=bounds.encode_page_token(last) if last else ""
        )

    @rpc
    async def ListSubjectTeams(
        self, request: pb.ListSubjectTeamsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubjectTeamsResponse:
        org = bounds.check_id("organization", request.organization)
        kind, ident = bounds.check_subject("subject", request.subject)
        actor = await resolve_actor(context, self.mgmt)
        found = await teams.subject_teams(self.mgmt, actor, org, f"{kind}:{ident}")
        return pb.ListSubjectTeamsResponse(teams=[to_pb(v) for v in found])


@register("orgauthz.v1.TeamService")
def _register(app: Any, server: grpc.aio.Server, mgmt: Management) -> None:
    pb_grpc.add_TeamServiceServicer_to_server(TeamServicer(mgmt), server)
