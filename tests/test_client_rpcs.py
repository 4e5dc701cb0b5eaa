"""orgauthz.client's generated methods: one for every RPC in the descriptors, reaching that RPC
on a real server, with keyword arguments, page iterators, typed errors and a per-call actor;
sync and asyncio, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import grpc
import pytest

import orgauthz.v1
from orgauthz import client as oc
from orgauthz.api.server import App
from orgauthz.client import AsyncClient, Client
from orgauthz.client_errors import ERRORS, error_from
from orgauthz.client_rpcs import PAGE_ITERATORS, RPC_METHODS
from orgauthz.v1 import invitations_pb2 as ipb
from tests.support.orgs import seed

C = grpc.StatusCode


def descriptor_rpcs() -> list[tuple[str, Any]]:
    """(``/orgauthz.v1.Service/Rpc``, its MethodDescriptor) for every RPC, read from the stubs."""
    out = []
    for info in pkgutil.iter_modules(orgauthz.v1.__path__):
        if info.name.endswith("_pb2"):
            file = importlib.import_module(f"orgauthz.v1.{info.name}").DESCRIPTOR
            for service in file.services_by_name.values():
                out += [(f"/{service.full_name}/{m.name}", m) for m in service.methods]
    return sorted(out, key=lambda item: item[0])


RPCS = descriptor_rpcs()
PAGED = [
    path
    for path, m in RPCS
    if "page_token" in m.input_type.fields_by_name and "next_page_token" in m.output_type.fields_by_name
]
HAND_WRITTEN = {"check", "batch_check", "list_scopes", "plan_objects", "authenticate"}
GENERATED = [(path, m) for path, m in RPCS if RPC_METHODS.get(path) not in HAND_WRITTEN]


def test_every_rpc_of_every_service_has_a_method_on_both_clients() -> None:
    assert len({p.split("/")[1] for p, _ in RPCS}) == 12
    missing = [path for path, _ in RPCS if path not in RPC_METHODS]
    assert missing == []
    for path, _ in RPCS:
        name = RPC_METHODS[path]
        assert callable(getattr(Client, name)), path
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), path
    assert len(set(RPC_METHODS.values())) == len(RPC_METHODS)  # no two RPCs share a method


def test_every_list_rpc_has_an_iterator_on_both_clients() -> None:
    assert sorted(PAGE_ITERATORS) == sorted(PAGED)
    for path in PAGED:
        assert inspect.isgeneratorfunction(getattr(Client, PAGE_ITERATORS[path])), path
        assert inspect.isasyncgenfunction(getattr(AsyncClient, PAGE_ITERATORS[path])), path


def test_generated_arguments_are_the_request_fields_keyword_only() -> None:
    for path, m in GENERATED:
        params = inspect.signature(getattr(Client, RPC_METHODS[path])).parameters
        fields = list(m.input_type.fields_by_name)
        options = ["call_actor" if "actor" in fields else "actor", "timeout"]
        assert list(params)[1:] == fields + options, path
        assert all(p.kind is p.KEYWORD_ONLY for p in list(params.values())[1:]), path


class Recording(Client):
    """Records what a generated method would send, without a server."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:9")
        self.sent: list[tuple[str, Any, Any, str | None]] = []

    def _unary(self, method: str, request: Any, response: Any, actor: str | None, timeout: float | None) -> Any:
        self.sent.append((method, request, response, actor))
        return response(next_page_token="") if "next_page_token" in response.DESCRIPTOR.fields_by_name else response()


def test_each_method_sends_its_own_rpc_with_its_request_and_response_types() -> None:
    with Recording() as c:
        for path, m in GENERATED:
            getattr(c, RPC_METHODS[path])()
            sent_path, request, response, actor = c.sent.pop()
            assert sent_path == path
            assert request.DESCRIPTOR.full_name == m.input_type.full_name
            assert response.DESCRIPTOR.full_name == m.output_type.full_name
            assert actor is None


def test_keyword_arguments_fill_the_request() -> None:
    with Recording() as c:
        c.set_acl(workspace="w", object="deployment:d", entries=[{"subject": "user:bob", "level": "run"}])
        c.update_workspace(workspace="w", name="W")
        c.list_audit_events(organization="acme", actor="user:bob", call_actor="user:alice")
        (_, acl, _, _), (_, ws, _, _), (_, audit, _, actor) = c.sent
    assert (acl.workspace, acl.object, acl.entries[0].subject, acl.entries[0].level) == (
        "w",
        "deployment:d",
        "user:bob",
        "run",
    )
    assert not ws.HasField("description")  # optional left out stays unset: not cleared
    assert (audit.actor, actor) == ("user:bob", "user:alice")  # a filter, and the call's actor


@pytest.mark.parametrize("code", sorted(ERRORS, key=lambda c: c.name))
def test_each_status_code_raises_its_own_class(code: grpc.StatusCode) -> None:
    class Failed(grpc.RpcError):  # type: ignore[misc]
        def code(self) -> grpc.StatusCode:
            return code

        def details(self) -> str:
            return "org_role: no"

    err = error_from(Failed(), "/orgauthz.v1.X/Y")
    assert type(err) is ERRORS[code]
    assert err.code() is code
    assert err.__class__.__name__ == "".join(w.capitalize() for w in code.name.split("_"))
    assert isinstance(err, oc.OrgAuthzClientError)
    assert isinstance(err, grpc.RpcError)
    assert (err.details(), err.field, err.method) == ("org_role: no", "org_role", "/orgauthz.v1.X/Y")


# -- against a real server -----------------------------------------------------------------

WORLD = {
    "organizations": [
        {
            "id": "acme",
            "handle": "acme",
            "name": "Acme",
            "members": [{"user": "alice", "role": "Owner"}, {"user": "bob", "role": "Member"}],
            "workspaces": [{"id": "acme-prod", "handle": "prod"}],
        }
    ]
}


async def test_every_method_reaches_its_rpc_on_the_server(app: App, policy) -> None:
    """Asked with no arguments, each method gets an answer or a documented refusal from that
    RPC: never UNIMPLEMENTED (a wrong path), never a bare grpc.RpcError."""
    rev = seed(app.db, policy, WORLD)

    def run() -> dict[str, str]:
        seen = {}
        with Client(f"127.0.0.1:{app.port}", actor="user:alice") as c:
            c.check("user:alice", workspace="acme-prod", scope="see_flows", min_revision=rev)
            for path, m in GENERATED:
                if path.endswith(("/LeaveOrganization", "/DeleteWorkspace", "/RemoveMember")):
                    continue  # would change the world for the next ones; their flows below
                try:
                    r = getattr(c, RPC_METHODS[path])()
                    assert r.DESCRIPTOR.full_name == m.output_type.full_name
                    seen[path] = "OK"
                except oc.OrgAuthzClientError as exc:
                    seen[path] = exc.code().name if exc.method == path else f"{exc.method} for {path}"
        return seen

    seen = await asyncio.to_thread(run)
    assert len(seen) == len(GENERATED) - 3
    assert "UNIMPLEMENTED" not in seen.values()
    assert {v for v in seen.values() if v != "OK"} <= set(C.__members__)  # each error from its own RPC
    assert seen["/orgauthz.v1.WorkspaceService/GetWorkspace"] in {"INVALID_ARGUMENT", "NOT_FOUND"}


def sync_flows(address: str) -> None:
    with Client(address) as platform:
        made = platform.create_organization(
            id="acme", handle="acme", name="Acme", admin_user_id="alice", admin_email="alice@acme.test"
        )
        assert made.organization.id == "acme"
    with Client(address, actor="user:alice") as alice, Client(address, actor="user:bob") as bob:
        invited = alice.create_invitations(organization="acme", emails=["bob@acme.test"], org_role="Member")
        token = invited.results[0].token
        accepted = bob.accept_invitation(token=token, email="bob@acme.test")
        assert accepted.invitation.status == ipb.INVITATION_STATUS_ACCEPTED
        with pytest.raises(oc.FailedPrecondition):
            bob.accept_invitation(token=token, email="bob@acme.test")

        for i in range(5):
            alice.create_workspace(organization="acme", id=f"acme-w{i}", handle=f"w{i}")
        with pytest.raises(oc.AlreadyExists):
            alice.create_workspace(organization="acme", id="acme-w0", handle="w0")
        first = alice.list_workspaces(organization="acme", page_size=2)
        assert len(first.workspaces) == 2
        assert first.next_page_token  # so the iterator below follows three pages
        assert [w.id for w in alice.iter_workspaces(organization="acme", page_size=2)] == [
            f"acme-w{i}" for i in range(5)
        ]
        assert [m.user_id for m in alice.iter_members(organization="acme", page_size=1)] == ["alice", "bob"]

        alice.grant_workspace_access(workspace="acme-w0", subject="user:bob", role="Developer")
        assert alice.check("user:bob", workspace="acme-w0", scope="run_deployments").allowed
        acl = alice.set_acl(
            workspace="acme-w0", object="deployment:nightly", entries=[{"subject": "user:alice", "level": "run"}]
        )
        assert not alice.check(
            "user:bob", workspace="acme-w0", scope="run_deployments", obj="deployment:nightly"
        ).allowed
        with pytest.raises(oc.Conflict) as stale:
            alice.set_acl(workspace="acme-w0", object="deployment:nightly", entries=[])
        assert (stale.value.code(), stale.value.field) == (C.ABORTED, "expected_revision")
        assert isinstance(stale.value, oc.Aborted)
        alice.clear_acl(workspace="acme-w0", object="deployment:nightly", expected_revision=acl.acl.revision)

        with pytest.raises(oc.NotFound) as missing:
            alice.get_workspace(workspace="acme-nope")
        assert missing.value.method == "/orgauthz.v1.WorkspaceService/GetWorkspace"
        with pytest.raises(oc.InvalidArgument) as bad:
            alice.create_service_account(organization="acme", id="root", name="Root", org_role="Admin")
        assert bad.value.field == "org_role"
        with pytest.raises(oc.PermissionDenied):
            bob.grant_workspace_access(workspace="acme-w0", subject="user:bob", role="Owner")
        with pytest.raises(oc.Unauthenticated):
            alice.authenticate("pnb_not-a-key")
        with pytest.raises(grpc.RpcError):  # what callers of the decision helpers caught before
            alice.authenticate("pnb_not-a-key")

        # Bob, a Member, acts for Alice on one call; his own calls stay his.
        bob.create_workspace(organization="acme", id="acme-x", handle="x", actor="user:alice")
        with pytest.raises(oc.PermissionDenied):
            bob.create_workspace(organization="acme", id="acme-y", handle="y")
        # ListAuditEvents' `actor` is the filter; the call's actor is `call_actor`.
        events = list(
            bob.iter_audit_events(organization="acme", actor="user:bob", page_size=1, call_actor="user:alice")
        )
        assert [e.event for e in events] == ["orgauthz.invitation.accepted"]


async def test_sync_flows_invite_accept_grant_acl_pages_and_errors(app: App) -> None:
    await asyncio.to_thread(sync_flows, f"127.0.0.1:{app.port}")


async def test_async_flows_pages_actor_and_errors(app: App, policy) -> None:
    rev = seed(app.db, policy, WORLD)
    address = f"127.0.0.1:{app.port}"
    async with AsyncClient(address, actor="user:alice") as alice, AsyncClient(address, actor="user:bob") as bob:
        await alice.check("user:alice", workspace="acme-prod", scope="see_flows", min_revision=rev)
        for i in range(4):
            await alice.create_team(organization="acme", id=f"t{i}", name=f"Team {i}")
        await alice.add_team_members(organization="acme", id="t0", subjects=["user:alice", "user:bob"])
        teams = [t.id async for t in alice.iter_teams(organization="acme", page_size=3)]
        assert teams == ["t0", "t1", "t2", "t3"]
        assert [s async for s in alice.iter_team_members(organization="acme", id="t0", page_size=1)] == [
            "user:alice",
            "user:bob",
        ]
        made = await bob.create_workspace(organization="acme", id="acme-x", handle="x", actor="user:alice")
        assert made.workspace.id == "acme-x"
        with pytest.raises(oc.PermissionDenied):
            await bob.create_workspace(organization="acme", id="acme-y", handle="y")
        with pytest.raises(oc.NotFound):
            await alice.get_team(organization="acme", id="nope")
        with pytest.raises(oc.InvalidArgument) as bad:
            await alice.create_invitations(organization="acme", emails=["x@acme.test"], org_role="Nobody")
        assert bad.value.field == "org_role"
        scopes = [s.name async for s in alice.iter_scope_catalog(page_size=5)]
        assert "see_flows" in scopes
        assert len(scopes) > 5


def test_mypy_sees_the_response_types(tmp_path: Path) -> None:
    """The typed methods return the response messages as types mypy checks (the generated
    ``*_pb2.pyi``, which mypy reads even where it skips the generated ``.py`` files), not
    ``Any``: a misuse of a response is a type error."""
    from mypy import api

    snippet = tmp_path / "use_client.py"
    snippet.write_text(
        "from orgauthz.client import Client\n"
        "c = Client('127.0.0.1:1')\n"
        "r = c.create_workspace(organization='a', id='w', handle='w')\n"
        "n: int = r.workspace.id\n"
    )
    root = Path(__file__).resolve().parents[1]
    out, _, status = api.run(["--config-file", str(root / "pyproject.toml"), str(snippet)])
    assert status == 1, out
    assert 'expression has type "str", variable has type "int"' in out, out
