"""SPEC §4 bad input, over every RPC of every service (enumerated from the descriptors, so a
new RPC is covered without touching this file), on SQLite and PostgreSQL:

- any request, with any actor metadata, ends with a documented status: never INTERNAL,
  UNKNOWN, a crash or a hang (each call has a deadline);
- a request that is refused changes nothing in the store: the head revision and a
  checksum over every row of every table are the same before and after;
- a request above ``max_message_bytes`` is refused by gRPC with RESOURCE_EXHAUSTED.

UNAVAILABLE is accepted only for a read carrying a ``min_revision`` ahead of the store
(SPEC §3: "fail retryably"), answered after ``min_revision_wait_s``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from tests.conftest import settings_for
from tests.reliability import fuzz
from tests.reliability.support import DOCUMENTED, C, OrgWorld, all_rpcs, build_world, call, fingerprint, scaled

RPCS = all_rpcs()
MAX_MESSAGE = 256 * 1024
TRIED: Counter[str] = Counter()
CODES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(
        f"\n[bad input] {sum(TRIED.values())} requests over {len(TRIED)} RPCs (x databases); "
        f"statuses: {dict(CODES.most_common())}"
    )


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[App]:
    server = App(settings_for(store_url, max_message_bytes=MAX_MESSAGE, min_revision_wait_s=0.05))
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
async def world(app: App, channel: grpc.aio.Channel, policy: PolicySet) -> dict[str, OrgWorld]:
    return await build_world(app, channel, policy)


def metadata(world: dict[str, OrgWorld]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Mostly real actors and keys of organization A (so calls reach the services), else no
    actor, actors of B or nobody, and malformed headers."""
    a = world["a"]
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
    users = [f"user:{u}" for u in a.users] + ["user:nobody", "user:b-admin"]
    keys = [*a.service_accounts.values(), "pnb_" + "A" * 40, "pnb_x", "pnb_" + "A" * 300]
    valid = st.sampled_from(
        [
            [("x-orgauthz-actor", "user:a-admin")],
            [("x-orgauthz-actor", "user:a-member")],
            [("x-orgauthz-actor", "user:a-owner")],
            [("x-orgauthz-actor", "user:a-manager")],
            [("x-orgauthz-api-key", a.service_accounts["a-sa-bot"])],
        ]
    )
    hostile = st.one_of(
        st.just([]),
        st.sampled_from(users).map(lambda u: [("x-orgauthz-actor", u)]),
        st.sampled_from(keys).map(lambda k: [("x-orgauthz-api-key", k)]),
        printable.map(lambda v: [("x-orgauthz-actor", v)]),
        printable.map(lambda v: [("x-orgauthz-api-key", v)]),
        st.tuples(st.sampled_from(users), st.sampled_from(keys)).map(
            lambda t: [("x-orgauthz-actor", t[0]), ("x-orgauthz-api-key", t[1])]
        ),
        st.sampled_from(["service_account:a-sa-bot", "user", "user:", "platform", "user:a-admin,user:b-admin"]).map(
            lambda u: [("x-orgauthz-actor", u)]
        ),
    )
    return st.integers(0, 9).flatmap(lambda k: valid if k < 6 else hostile)


def acceptable(code: grpc.StatusCode, values: dict[str, object]) -> bool:
    return code in DOCUMENTED or (code == C.UNAVAILABLE and fuzz.has_min_revision(values))


@settings(
    max_examples=scaled(10),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_s4_any_request_gets_a_documented_status_and_a_refused_one_changes_nothing(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld], data: DataObject
) -> None:
    """Each example sends one generated request to every RPC, in a generated order."""
    assert app.db is not None
    for rpc in data.draw(st.permutations(RPCS), label="order"):
        values = data.draw(fuzz.message(rpc.input, world), label=rpc.short)
        md = data.draw(metadata(world), label="metadata")
        request = fuzz.fill(rpc.request_class()(), values)
        before = fingerprint(app.db)
        out = await call(channel, rpc, request, md, timeout=15)
        TRIED[rpc.short] += 1
        CODES[out.code.name] += 1
        assert acceptable(out.code, values), f"{rpc.short} answered {out.code.name}: {out.details!r}"
        assert "Traceback" not in out.details and "sqlalchemy" not in out.details.lower(), out.details  # noqa: PT018  # one invariant, two words for it
        if out.code != C.OK:
            assert fingerprint(app.db) == before, f"{rpc.short} refused with {out.code.name} but changed the store"


def _padded(size: int) -> bytes:
    """An empty request followed by one unknown length-delimited field (number 1000) of ``size`` bytes:
    any request message parses it, so the size limit is what decides."""
    tag = bytes([0xC2, 0x3E])  # (1000 << 3) | 2 as a varint
    n, length = size, bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return tag + bytes(length) + b"x" * size


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # gRPC's limit; the store plays no part
async def test_s4_messages_above_max_message_bytes_are_refused(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    assert app.db is not None
    before = fingerprint(app.db)
    for rpc in RPCS:
        method = channel.unary_unary(rpc.path, response_deserializer=rpc.response_class().FromString)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await method(_padded(MAX_MESSAGE + 1), metadata=(("x-orgauthz-actor", "user:a-admin"),), timeout=15)
        TRIED[rpc.short] += 1
        assert err.value.code() == C.RESOURCE_EXHAUSTED, (rpc.short, err.value.code(), err.value.details())
        # A padded request under the limit is parsed (the unknown field ignored) and answered.
        method_ok = channel.unary_unary(rpc.path, response_deserializer=rpc.response_class().FromString)
        try:
            await method_ok(_padded(MAX_MESSAGE - 1024), metadata=(("x-orgauthz-actor", "user:a-admin"),), timeout=15)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in DOCUMENTED, (rpc.short, exc.code(), exc.details())  # noqa: PT017  # any refusal is fine if documented
        TRIED[rpc.short] += 1
    assert fingerprint(app.db) == before
    check = next(r for r in RPCS if r.short == "AuthorizationService.Check")
    ok = await call(channel, check, check.request_class()(subject="user:a-admin", workspace="a-ws1", scope="see_flows"))
    assert ok.code == C.OK
    assert ok.response.allowed


def _undecodable(rpc_input: Any) -> list[bytes]:
    """Bytes that are no encoding of any message, and one whose first string field holds bad UTF-8."""
    out = [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08"]  # bad tag, a length past the end, a missing varint
    strings = [f for f in rpc_input.fields if f.type == f.TYPE_STRING]
    if strings:
        out.append(bytes([(strings[0].number << 3) | 2, 1, 0xFF]))
    return out


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # decoding happens before the store
async def test_s4_bytes_that_do_not_decode_are_invalid_argument_naming_the_request(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    """gRPC itself answers UNKNOWN when a request does not decode; every method here says
    INVALID_ARGUMENT and names ``request``, health and reflection included."""
    assert app.db is not None
    before = fingerprint(app.db)
    actor = (("x-orgauthz-actor", "user:a-admin"),)
    for rpc in RPCS:
        method = channel.unary_unary(rpc.path, request_serializer=bytes, response_deserializer=bytes)
        for raw in _undecodable(rpc.input):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await method(raw, metadata=actor, timeout=10)
            TRIED[rpc.short] += 1
            assert err.value.code() == C.INVALID_ARGUMENT, (rpc.short, raw, err.value.code(), err.value.details())
            assert (err.value.details() or "").startswith("request: not a valid encoding"), (rpc.short, raw)
    health = health_pb2.HealthCheckRequest.DESCRIPTOR
    for raw in _undecodable(health):
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check(raw, timeout=10)
        assert err.value.code() == C.INVALID_ARGUMENT, (raw, err.value.code(), err.value.details())
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in watch(raw, timeout=10):
                pass
        assert err.value.code() == C.INVALID_ARGUMENT, (raw, err.value.code(), err.value.details())
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", request_serializer=bytes
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in reflect(iter([raw]), timeout=10):
                pass
        assert err.value.code() == C.INVALID_ARGUMENT, (raw, err.value.code(), err.value.details())
    assert fingerprint(app.db) == before
    # Everything still answers afterwards.
    check = next(r for r in RPCS if r.short == "AuthorizationService.Check")
    ok = await call(channel, check, check.request_class()(subject="user:a-admin", workspace="a-ws1", scope="see_flows"))
    assert ok.code == C.OK
    assert ok.response.allowed


def test_every_service_and_rpc_is_enumerated() -> None:
    services = {r.service for r in RPCS}
    assert {
        "orgauthz.v1.AuthorizationService",
        "orgauthz.v1.OrganizationService",
        "orgauthz.v1.WorkspaceService",
        "orgauthz.v1.MemberService",
        "orgauthz.v1.AccessService",
        "orgauthz.v1.RoleService",
        "orgauthz.v1.AuditService",
        "orgauthz.v1.InvitationService",
        "orgauthz.v1.ServiceAccountService",
    } <= services
    assert len(RPCS) >= 38
