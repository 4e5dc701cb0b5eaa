"""Helpers for the management tests: stubs with an actor, bootstrap, status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from orgauthz.api.server import App
from orgauthz.store.snapshots import head_revision
from orgauthz.v1 import acls_pb2_grpc, authorization_pb2_grpc
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pbg


class _Bound:
    """A stub whose calls carry fixed metadata."""

    def __init__(self, stub: Any, metadata: list[tuple[str, str]]) -> None:
        self._stub, self._md = stub, metadata

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(request: Any, **kw: Any) -> Any:
            return method(request, metadata=self._md, **kw)

        return call


@dataclass
class As:
    """Every management stub, acting for one actor."""

    orgs: Any
    workspaces: Any
    members: Any
    access: Any
    roles: Any
    audit: Any
    authz: Any
    acls: Any

    @classmethod
    def of(cls, channel: grpc.aio.Channel, actor: str = "", *, api_key: str = "", token: str = "") -> As:
        md = []
        if token:
            md.append(("authorization", f"Bearer {token}"))
        if actor:
            md.append(("x-orgauthz-actor", actor))
        if api_key:
            md.append(("x-orgauthz-api-key", api_key))
        return cls(
            orgs=_Bound(pbg.OrganizationServiceStub(channel), md),
            workspaces=_Bound(pbg.WorkspaceServiceStub(channel), md),
            members=_Bound(pbg.MemberServiceStub(channel), md),
            access=_Bound(pbg.AccessServiceStub(channel), md),
            roles=_Bound(pbg.RoleServiceStub(channel), md),
            audit=_Bound(pbg.AuditServiceStub(channel), md),
            authz=_Bound(authorization_pb2_grpc.AuthorizationServiceStub(channel), md),
            acls=_Bound(acls_pb2_grpc.AclServiceStub(channel), md),
        )


async def code(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status code a call ends with (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


async def create_org(channel: grpc.aio.Channel, org: str = "acme", admin: str = "alice", **limits: int) -> int:
    """Creates ``org`` with ``admin`` as its Admin; returns the revision."""
    r = await As.of(channel).orgs.CreateOrganization(
        pb.CreateOrganizationRequest(
            id=org,
            handle=org,
            name=org.title(),
            admin_user_id=admin,
            admin_email=f"{admin}@{org}.test",
            limits=pb.Limits(**limits),
        )
    )
    return int(r.revision)


async def add_member(app: App, org: str, user: str, role: str = "Member") -> None:
    """Adds a member directly in the store (invitations are another feature)."""
    from sqlalchemy import bindparam, select

    from orgauthz.domain import lines as L
    from orgauthz.services.context import Actor, audit
    from orgauthz.store import base as store
    from orgauthz.store.models import Membership, User

    known = select(User.id).where(User.id == bindparam("user"))

    def decide(at: Any) -> store.Decision[None]:
        writes = (
            []
            if at["user"]
            else [store.insert(User, {"id": user, "email": f"{user}@example.test", "created_at": at.now})]
        )
        writes.append(
            store.insert(Membership, {"org_id": org, "user_id": user, "org_role": role, "created_at": at.now})
        )
        return store.Decision(
            None,
            writes=writes,
            audits=[audit(Actor("platform"), "orgauthz.member.added", f"user:{user}")],
            change=at.change(add=L.membership_lines(f"user:{user}", org, role)),
        )

    assert app.management is not None
    await app.management.write(org, "member.added", {"user": (known, {"user": user})}, decide)


async def add_service_account(app: App, org: str, sa: str, role: str = "Member") -> None:
    from orgauthz.domain import lines as L
    from orgauthz.store import base as store
    from orgauthz.store.models import ServiceAccount

    def decide(at: Any) -> store.Decision[None]:
        row = {"id": sa, "org_id": org, "name": sa, "org_role": role, "created_at": at.now}
        return store.Decision(
            None,
            writes=[store.insert(ServiceAccount, row)],
            change=at.change(add=L.membership_lines(f"service_account:{sa}", org, role)),
        )

    assert app.management is not None
    await app.management.write(org, "service-account.added", {}, decide)


async def allowed(
    channel: grpc.aio.Channel,
    subject: str,
    scope: str,
    *,
    workspace: str = "",
    organization: str = "",
    obj: str = "",
) -> bool:
    stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
    target = {"workspace": workspace} if workspace else {"organization": organization}
    req = apb.CheckRequest(subject=subject, scope=scope, object=obj, **target)
    return bool((await stub.Check(req)).allowed)


def head(app: App) -> int:
    assert app.db is not None
    return head_revision(app.db)


@asynccontextmanager
async def two_servers(
    settings: Any,
) -> AsyncIterator[tuple[App, App, grpc.aio.Channel, grpc.aio.Channel]]:
    """Two running servers on one database (replicas), and a channel to each."""
    a, b = App(settings), App(settings)
    await a.start()
    await b.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch_b,
        ):
            yield a, b, ch_a, ch_b
    finally:
        await b.stop(0)
        await a.stop(0)
