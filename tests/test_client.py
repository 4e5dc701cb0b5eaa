"""orgauthz.client: the sync and asyncio wrappers return what the server decides."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from pathlib import Path

import grpc
import pytest
import yaml

import orgauthz.v1
from orgauthz.api.server import App
from orgauthz.client import AsyncClient, Client
from tests.support.orgs import seed

DEMO = yaml.safe_load((Path(__file__).parents[1] / "examples" / "demo.yaml").read_text())


async def test_async_client_check_batch_and_scopes(app: App, policy) -> None:
    rev = seed(app.db, policy, DEMO)
    async with AsyncClient(f"127.0.0.1:{app.port}") as c:
        r = await c.check("user:bob", workspace="acme-prod", scope="manage_flows", min_revision=rev, explain=True)
        assert r.allowed
        assert r.reasons == ["workspace role Developer"]
        results = await c.batch_check(
            [
                ("user:carol", "acme-prod", "see_flows"),
                ("user:carol", "acme-prod", "manage_flows"),
                ("service_account:ci-bot", "acme-prod", "see_secret_blocks"),
            ]
        )
        assert [x.allowed for x in results] == [True, False, True]
        assert "see_flows" in await c.list_scopes("user:carol", workspace="acme-prod")
        assert not (await c.check("user:bob", organization="acme", scope="create:invitation")).allowed


async def test_sync_client_agrees_with_async(app: App, policy) -> None:
    rev = seed(app.db, policy, DEMO)

    def run() -> list[bool]:
        with Client(f"127.0.0.1:{app.port}") as c:
            c.check("user:alice", workspace="acme-sandbox", scope="see_flows", min_revision=rev)
            return [
                c.check("user:alice", workspace="acme-sandbox", scope="manage_workspace_users").allowed,
                c.check("user:bob", workspace="acme-sandbox", scope="see_flows").allowed,
            ]

    assert await asyncio.to_thread(run) == [True, False]


async def test_a_call_s_own_actor_replaces_the_client_s(app: App, policy) -> None:
    """The server refuses an identity header given twice; a Client with an actor, asked to act
    for another on one call, sends that call's actor alone."""
    rev = seed(app.db, policy, DEMO)
    from orgauthz.v1 import management_pb2 as mpb

    def run() -> tuple[str, str]:
        with Client(f"127.0.0.1:{app.port}", actor="user:bob") as c:
            c.check("user:bob", workspace="acme-prod", scope="see_flows", min_revision=rev)  # the seed is in
            ws = c.stub("WorkspaceService")
            made = ws.CreateWorkspace(
                mpb.CreateWorkspaceRequest(organization="acme", id="acme-x", handle="x", name="X"),
                metadata=[("x-orgauthz-actor", "user:alice")],  # an Admin, for this call only
                timeout=10,
            )
            try:
                ws.CreateWorkspace(
                    mpb.CreateWorkspaceRequest(organization="acme", id="acme-y", handle="y", name="Y"), timeout=10
                )
            except grpc.RpcError as exc:
                return made.workspace.id, exc.code().name  # Bob, the client's own actor, is a Member
            return made.workspace.id, "OK"

    assert await asyncio.to_thread(run) == ("acme-x", "PERMISSION_DENIED")


ACL_DOC = {
    "organizations": [
        {
            "id": "acme",
            "handle": "acme",
            "name": "Acme",
            "members": [{"user": "alice", "role": "Owner"}, {"user": "vic"}, {"user": "olga"}],
            "workspaces": [
                {
                    "id": "prod",
                    "handle": "prod",
                    "access": [{"subject": "user:vic", "role": "Viewer"}, {"subject": "user:olga", "role": "Runner"}],
                    "acls": [
                        {
                            "object": "deployment:nightly",
                            "entries": [{"subject": "user:vic", "level": "run", "grant": True}],
                        },
                        {"object": "deployment:weekly", "entries": []},
                    ],
                }
            ],
        }
    ]
}


async def test_clients_ask_with_objects_and_plan_objects(app: App, policy) -> None:
    """R26: check, batch_check, list_scopes and plan_objects carry the object."""
    rev = seed(app.db, policy, ACL_DOC)
    async with AsyncClient(f"127.0.0.1:{app.port}") as c:
        r = await c.check(
            "user:vic", workspace="prod", scope="run_deployments", obj="deployment:nightly", min_revision=rev
        )
        assert r.allowed
        assert not (await c.check("user:vic", workspace="prod", scope="run_deployments")).allowed
        results = await c.batch_check(
            [
                ("user:olga", "prod", "run_deployments", "deployment:weekly"),
                ("user:olga", "prod", "run_deployments", "deployment:other"),
                ("user:olga", "prod", "run_deployments"),
            ]
        )
        assert [x.allowed for x in results] == [False, True, True]
        assert "run_deployments" in await c.list_scopes("user:vic", workspace="prod", obj="deployment:nightly")
        plan = await c.plan_objects("user:olga", workspace="prod", kind="deployment", scope="run_deployments")
        assert (plan.kind, list(plan.ids)) == (plan.ALL_EXCEPT, ["nightly", "weekly"])  # not listed on either

    def run() -> tuple[int, list[str], int]:
        with Client(f"127.0.0.1:{app.port}", actor="user:alice") as c:
            plan = c.plan_objects("user:vic", workspace="prod", kind="deployment", scope="run_deployments")
            from orgauthz.v1 import acls_pb2 as xpb

            got = c.stub("AclService").GetAcl(xpb.GetAclRequest(workspace="prod", object="deployment:nightly"))
            return plan.kind, list(plan.ids), len(got.acl.entries)

    kind, ids, entries = await asyncio.to_thread(run)
    assert (kind, ids, entries) == (3, ["nightly"], 1)  # ONLY


SERVICES = sorted(
    (name, module.name)
    for module in pkgutil.iter_modules(orgauthz.v1.__path__)
    if module.name.endswith("_pb2")
    for name in importlib.import_module(f"orgauthz.v1.{module.name}").DESCRIPTOR.services_by_name
)


def test_every_service_has_a_stub() -> None:
    assert ("AclService", "acls_pb2") in SERVICES
    assert ("TeamService", "teams_pb2") in SERVICES


@pytest.mark.parametrize(("service", "module"), SERVICES)
def test_client_stub_finds_every_service(service: str, module: str) -> None:
    """``client.stub(name)`` for every service of every ``.proto`` file (no call is made)."""
    grpc_module = importlib.import_module(f"orgauthz.v1.{module}_grpc")
    with Client("127.0.0.1:1") as c:
        assert isinstance(c.stub(service), getattr(grpc_module, f"{service}Stub"))
