"""R25, SPEC §3 on two replicas sharing PostgreSQL: removing a member from a team, or
deleting the team, on one replica is never answered allow by the other from a state that
reflects the write (with ``min_revision``: at once; without it: once its feed applied it)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import teams_pb2 as tpb
from tests.conftest import settings_for
from tests.management.support import As, add_member, create_org, two_servers
from tests.management.teams.test_teams import teams_of

pytestmark = pytest.mark.postgres


async def _check(channel: grpc.aio.Channel, subject: str, min_revision: int = 0) -> apb.CheckResponse:
    stub = As.of(channel).authz
    return await stub.Check(
        apb.CheckRequest(subject=subject, workspace="w", scope="manage_flows", min_revision=min_revision)
    )


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_a_removal_on_one_replica_is_never_an_allow_on_the_other(store_url: str) -> None:
    async with two_servers(settings_for(store_url)) as (a, _b, ch_a, ch_b):
        await create_org(ch_a)
        for user in ("bob", "ben"):
            await add_member(a, "acme", user)
        alice = As.of(ch_a, "user:alice")
        await alice.workspaces.CreateWorkspace(pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w"))
        teams = teams_of(ch_a, "user:alice")
        await teams.CreateTeam(tpb.CreateTeamRequest(organization="acme", id="eng", name="Eng"))
        await teams.AddTeamMembers(
            tpb.AddTeamMembersRequest(organization="acme", id="eng", subjects=["user:bob", "user:ben"])
        )
        g = await alice.access.GrantWorkspaceAccess(
            pb.GrantWorkspaceAccessRequest(workspace="w", subject="team:eng", role="Developer")
        )
        for user in ("bob", "ben"):  # b warm: both allowed there, and cached
            assert (await _check(ch_b, f"user:{user}", g.revision)).allowed
            assert (await _check(ch_b, f"user:{user}")).allowed

        removed = await teams.RemoveTeamMembers(
            tpb.RemoveTeamMembersRequest(organization="acme", id="eng", subjects=["user:bob"])
        )
        assert not (await _check(ch_b, "user:bob", removed.revision)).allowed  # at once, with min_revision
        assert (await _check(ch_b, "user:ben", removed.revision)).allowed

        deleted = await teams.DeleteTeam(tpb.DeleteTeamRequest(organization="acme", id="eng"))
        # Without min_revision b answers from what it has applied; never allow at or after the delete.
        for _ in range(200):
            r = await _check(ch_b, "user:ben")
            assert not (r.allowed and r.revision >= deleted.revision), r
            if r.revision >= deleted.revision:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("replica b never applied the delete")
        assert not (await _check(ch_b, "user:ben", deleted.revision)).allowed
