"""Who is calling (SPEC §2): each identity header at most once; credentials up to the metadata limit.

- ``authorization``, ``x-orgauthz-actor`` and ``x-orgauthz-api-key`` given more than once are
  INVALID_ARGUMENT naming the header, on every RPC, whichever copy comes first and whatever the
  copies hold (different, equal, one empty), before anything is evaluated or written: a proxy
  that appends the header it trusts behind one the client sent is never "last one wins";
- ``-bin`` variants of those names are other headers: never read as a credential or an actor;
- an API key or bearer token longer than the bounds is UNAUTHENTICATED (R14) for any size gRPC
  carries: a call's metadata may hold 32 KiB in all; above that gRPC answers
  RESOURCE_EXHAUSTED, every time, and nothing is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from orgauthz.api.server import App
from orgauthz.services.context import Actor
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.auth.test_auth import Pki, _tls_app, _tls_channel, pki  # noqa: F401  # pki: a fixture
from tests.management.support import add_member
from tests.support.rpcs import Rpc, all_rpcs, call, fingerprint, table_rows

C = grpc.StatusCode
TOKEN = "s3cret-token-for-tests"
AUTHORIZATION, ACTOR, API_KEY = "authorization", "x-orgauthz-actor", "x-orgauthz-api-key"
METADATA_LIMIT = 32 * 1024
Metadata = list[tuple[str, Any]]
RPCS: dict[str, Rpc] = {rpc.path: rpc for rpc in all_rpcs()}


async def _key(app: App, org: str, admin: str, sa: str) -> str:
    from orgauthz.services.service_accounts import create_service_account

    assert app.management is not None
    _, issued, _ = await create_service_account(
        app.management, Actor(f"user:{admin}"), org, sa_id=sa, name=sa, role="Member", key_ttl_s=0
    )
    return issued.api_key


class World:
    """Organization acme: Admin alice-a, Member bob-a, workspace w, service account robot with a key."""

    def __init__(self, app: App, channel: grpc.aio.Channel, token: str) -> None:
        self.app, self.channel, self.token = app, channel, token
        self.key = ""

    @property
    def caller(self) -> Metadata:
        return [(AUTHORIZATION, f"Bearer {self.token}")] if self.token else []

    async def build(self) -> World:
        org = pb.CreateOrganizationRequest(id="acme", handle="acme", name="Acme", admin_user_id="alice-a")
        assert (await _call(self, "OrganizationService", "CreateOrganization", org, self.caller)).code == C.OK
        await add_member(self.app, "acme", "bob-a")
        self.key = await _key(self.app, "acme", "alice-a", "robot")
        ws = pb.CreateWorkspaceRequest(organization="acme", id="w", handle="w")
        admin = [*self.caller, (ACTOR, "user:alice-a")]
        assert (await _call(self, "WorkspaceService", "CreateWorkspace", ws, admin)).code == C.OK
        return self

    def store(self) -> tuple[tuple[int, str], list[str]]:
        """(fingerprint of every table, the audit events)."""
        assert self.app.db is not None
        return fingerprint(self.app.db), table_rows(self.app.db)["audit_events"]


@pytest.fixture(params=[{"insecure_dev": True}, {"insecure_dev": False, "auth_token": TOKEN}], ids=["dev", "token"])
async def world(request: pytest.FixtureRequest, store_url: str) -> AsyncIterator[World]:
    """The world on a server in insecure development mode and on one that needs the shared secret."""
    app = App(settings_for(store_url, **request.param))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            yield await World(app, ch, request.param.get("auth_token", "")).build()
    finally:
        await app.stop(0)


def _grant(owner: str = "user:bob-a") -> pb.GrantWorkspaceAccessRequest:
    return pb.GrantWorkspaceAccessRequest(workspace="w", subject=owner, role="Owner")


async def _call(world: World, service: str, method: str, request: Any, metadata: Sequence[tuple[str, Any]]) -> Any:
    return await call(world.channel, RPCS[f"/orgauthz.v1.{service}/{method}"], request, metadata)


def _repeats(world: World) -> list[tuple[str, Metadata]]:
    """(header, metadata with that header twice): each order, equal copies, an empty copy."""
    key, token = world.key, world.token or "anything"
    copies = {
        AUTHORIZATION: [f"Bearer {token}", "Bearer not-the-token"],
        ACTOR: ["user:bob-a", "user:alice-a"],
        API_KEY: [key, "pnb_" + "A" * 40],
    }
    out: list[tuple[str, Metadata]] = []
    for header, (first, second) in copies.items():
        caller = [] if header == AUTHORIZATION else world.caller
        for pair in ((first, second), (second, first), (second, second), (second, ""), ("", second)):
            out.append((header, [*caller, (header, pair[0]), (header, pair[1])]))
    return out


async def test_a_repeated_actor_header_is_refused_never_last_one_wins(world: World) -> None:
    """bob-a (a Member) then alice-a (an Admin): not a grant audited as alice-a, and not bob-a either."""
    before = world.store()
    for actors in (["user:bob-a", "user:alice-a"], ["user:alice-a", "user:bob-a"], ["user:alice-a", "user:alice-a"]):
        md = [*world.caller, *((ACTOR, a) for a in actors)]
        out = await _call(world, "AccessService", "GrantWorkspaceAccess", _grant(), md)
        assert out.code == C.INVALID_ARGUMENT, (actors, out)
        assert out.details == f"{ACTOR}: given more than once; send it once", out.details
    assert world.store() == before
    # Once, each is itself: the Member may not make itself Owner, the Admin may.
    member = await _call(
        world, "AccessService", "GrantWorkspaceAccess", _grant(), [*world.caller, (ACTOR, "user:bob-a")]
    )
    assert member.code == C.PERMISSION_DENIED
    admin = [*world.caller, (ACTOR, "user:alice-a")]
    assert (await _call(world, "AccessService", "GrantWorkspaceAccess", _grant(), admin)).code == C.OK


async def test_every_rpc_refuses_a_repeated_identity_header_and_changes_nothing(world: World) -> None:
    """Every RPC of every service, health and reflection included; each header, both orders, equal and empty copies."""
    before = world.store()
    check = apb.CheckRequest(subject="user:bob-a", workspace="w", scope="see_flows")
    given = {
        "/orgauthz.v1.AuthorizationService/Check": check,
        "/orgauthz.v1.AuthorizationService/BatchCheck": apb.BatchCheckRequest(items=[check]),
        "/orgauthz.v1.AccessService/GrantWorkspaceAccess": _grant(),
    }
    requests = [(rpc, given[path] if path in given else rpc.request_class()()) for path, rpc in RPCS.items()]
    tried = 0
    for header, md in _repeats(world):
        for rpc, request in requests:
            out = await call(world.channel, rpc, request, md)
            assert out.code == C.INVALID_ARGUMENT, (rpc.short, header, md, out)
            assert out.details.startswith(f"{header}:"), (rpc.short, out.details)
            tried += 1
        health = world.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await health(health_pb2.HealthCheckRequest(), metadata=md, timeout=10)
        assert (exc.value.code(), (exc.value.details() or "").split(":")[0]) == (C.INVALID_ARGUMENT, header)
        reflection = world.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        stream = reflection(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=md, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stream.read()
        assert exc.value.code() == C.INVALID_ARGUMENT
    assert tried == len(_repeats(world)) * len(requests)
    store, audit = world.store()
    assert audit == before[1], "a refused call recorded an audit event"
    assert (store, audit) == before


async def test_bin_variants_are_not_identity_headers(world: World) -> None:
    """``x-orgauthz-actor-bin`` and friends are other headers: never an actor, a key or a credential."""
    alice = b"user:alice-a"
    only_bin = [*world.caller, (ACTOR + "-bin", alice)]
    assert (await _call(world, "AccessService", "GrantWorkspaceAccess", _grant(), only_bin)).code == C.UNAUTHENTICATED
    beside = [*world.caller, (ACTOR, "user:bob-a"), (ACTOR + "-bin", alice), (API_KEY + "-bin", world.key.encode())]
    assert (await _call(world, "AccessService", "GrantWorkspaceAccess", _grant(), beside)).code == C.PERMISSION_DENIED
    if world.token:
        forged = [(AUTHORIZATION + "-bin", f"Bearer {world.token}".encode()), (ACTOR, "user:alice-a")]
        assert (await _call(world, "AccessService", "GrantWorkspaceAccess", _grant(), forged)).code == C.UNAUTHENTICATED


# -- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [257, 1_000, 10_000, 16_000, 30_000])
async def test_r14_an_over_long_api_key_is_unauthenticated_up_to_the_metadata_limit(world: World, length: int) -> None:
    """Every time (gRPC's default limits refuse 8-16 KiB of metadata at random), on a read and a write."""
    before = world.store()
    key = "pnb_" + "A" * (length - 4)
    for _ in range(10):
        for service, method, request in (
            ("WorkspaceService", "ListWorkspaces", pb.ListWorkspacesRequest(organization="acme")),
            ("AccessService", "GrantWorkspaceAccess", _grant("service_account:robot")),
        ):
            out = await _call(world, service, method, request, [*world.caller, (API_KEY, key)])
            assert (out.code, out.details) == (C.UNAUTHENTICATED, "invalid API key"), (length, out.code)
    assert world.store() == before


@pytest.mark.parametrize("length", [257, 10_000, 16_000, 30_000])
async def test_an_over_long_bearer_token_is_unauthenticated_up_to_the_metadata_limit(world: World, length: int) -> None:
    """In development mode nobody's token is read, so the same call is answered."""
    md = [(AUTHORIZATION, "Bearer " + "A" * (length - 7)), (ACTOR, "user:alice-a")]
    expected = C.UNAUTHENTICATED if world.token else C.OK
    check = apb.CheckRequest(subject="user:bob-a", workspace="w", scope="see_flows")
    for _ in range(10):
        for service, method, request in (
            ("AuthorizationService", "Check", check),
            ("WorkspaceService", "ListWorkspaces", pb.ListWorkspacesRequest(organization="acme")),
        ):
            out = await _call(world, service, method, request, md)
            assert out.code == expected, (length, service, out.code, out.details[:200])


async def test_an_over_long_actor_is_invalid_argument_naming_the_header(world: World) -> None:
    md = [*world.caller, (ACTOR, "user:" + "a" * 20_000)]
    out = await _call(world, "AccessService", "GrantWorkspaceAccess", _grant(), md)
    assert out.code == C.INVALID_ARGUMENT
    assert out.details.startswith(f"{ACTOR}:")
    assert len(out.details) < 500, "the message does not repeat the header"


async def test_metadata_past_32_kib_in_all_is_resource_exhausted_every_time(world: World) -> None:
    """The limit counts all of a call's metadata (HTTP/2's size: name, value and 32 bytes per entry)."""
    before = world.store()
    grant = ("AccessService", "GrantWorkspaceAccess", _grant())
    check = ("AuthorizationService", "Check", apb.CheckRequest(subject="user:bob-a", workspace="w", scope="see_flows"))
    admin = [*world.caller, (ACTOR, "user:alice-a")]
    over: list[Metadata] = [
        [*world.caller, (API_KEY, "pnb_" + "A" * METADATA_LIMIT)],
        [*admin, ("x-padding", "p" * 33_000)],
        [*admin, *((f"x-padding-{i}", "p" * 12_000) for i in range(3))],
    ]
    for md in over:
        for _ in range(10):
            for service, method, request in (grant, check):
                out = await _call(world, service, method, request, md)
                assert out.code == C.RESOURCE_EXHAUSTED, (service, method, out)
                assert "metadata size" in out.details
    # Just under the limit in all, the call is read and answered.
    under = [*admin, *((f"x-padding-{i}", "p" * 10_000) for i in range(3))]
    assert (await _call(world, *check, under)).code == C.OK
    assert world.store() == before
    assert (await _call(world, *grant, under)).code == C.OK


async def test_an_mtls_server_refuses_a_repeated_identity_header(
    store_url: str,
    pki: Pki,  # noqa: F811  # the fixture imported above
) -> None:
    """With client certificates alone nobody's token is read, and a repeated header is still refused."""
    app = _tls_app(store_url, pki, client_ca=True)
    await app.start()
    try:
        async with _tls_channel(app.port, pki, "client") as ch:
            w = await World(app, ch, "").build()
            before = w.store()
            for header, md in _repeats(w):
                for service, method, request in (
                    (
                        "AuthorizationService",
                        "Check",
                        apb.CheckRequest(subject="user:bob-a", workspace="w", scope="see_flows"),
                    ),
                    ("AccessService", "GrantWorkspaceAccess", _grant()),
                ):
                    out = await _call(w, service, method, request, md)
                    assert (out.code, out.details.split(":")[0]) == (C.INVALID_ARGUMENT, header), (method, md, out)
            assert w.store() == before
    finally:
        await app.stop(0)
