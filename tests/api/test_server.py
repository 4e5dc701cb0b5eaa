"""How App adds services to grpc.aio: only AuthorizationService methods are registered
methods (grpc.aio waits on one pending request per registered method for every call);
every other service is reachable through its generic handler; every method, whatever its
shape, answers a request that does not decode INVALID_ARGUMENT (SPEC §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from orgauthz.api.server import App, _Services
from orgauthz.v1 import management_pb2, management_pb2_grpc


class _Recorder:
    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self.registered.append(service_name)


def test_services_added_through_the_wrapper_keep_only_their_generic_handlers() -> None:
    server = _Recorder()
    management_pb2_grpc.add_MemberServiceServicer_to_server(
        management_pb2_grpc.MemberServiceServicer(),
        _Services(server),  # type: ignore[arg-type]  # a recorder in place of grpc.aio.Server
    )
    assert server.registered == []
    assert len(server.generic) == 1


def test_a_service_named_registered_is_registered_too() -> None:
    server = _Recorder()
    services = _Services(server, registered=["orgauthz.v1.MemberService"])  # type: ignore[arg-type]  # a recorder
    management_pb2_grpc.add_MemberServiceServicer_to_server(management_pb2_grpc.MemberServiceServicer(), services)
    assert server.registered == ["orgauthz.v1.MemberService"]
    assert len(server.generic) == 1


async def test_a_management_call_is_answered_without_being_a_registered_method(app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = management_pb2_grpc.MemberServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListMembers(management_pb2.ListMembersRequest(organization="o-nope"), timeout=10)
    # found and run: the servicer asks for an actor (not UNIMPLEMENTED)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "x-orgauthz-actor" in (raised.value.details() or "")


def test_each_service_is_added_once_refusing_undecodable_requests_and_a_generic_only_one_is_kept() -> None:
    """Generated code passes a service to both registration calls: it is added once, its
    deserializers returning a marker for bytes that do not decode; a service that only comes
    through the generic call still is added."""
    from grpc_health.v1 import health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    server = _Recorder()
    lookup = _Services(server)  # type: ignore[arg-type]  # a recorder in place of grpc.aio.Server
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), lookup)
    only_generic = grpc.method_handlers_generic_handler(
        "test.Only", {"M": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}
    )
    lookup.add_generic_rpc_handlers((only_generic,))
    assert [h.service_name() for h in server.generic] == ["grpc.health.v1.Health"]
    deserialize = server.generic[0]._method_handlers["/grpc.health.v1.Health/Check"].request_deserializer
    assert type(deserialize(b"\xff\xff")).__name__ == "Undecodable"
    lookup.finish()
    assert [h.service_name() for h in server.generic] == ["grpc.health.v1.Health", "test.Only"]


# -- every handler shape (health and reflection cover three through App; this covers all) --

Message = health_pb2.HealthCheckRequest
GOOD = Message(service="x").SerializeToString()
BAD = b"\xff\xff"  # a bad tag


async def _unary_unary(request: Any, context: Any) -> Any:
    return request


async def _unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
    yield request


async def _unary_written(request: Any, context: Any) -> None:
    await context.write(request)


async def _stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
    return [r async for r in requests][-1]


async def _stream_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    async for request in requests:
        yield request


def _sync_unary_unary(request: Any, context: Any) -> Any:
    return request


SHAPES: dict[str, tuple[Callable[..., Any], Any]] = {
    "UnaryUnary": (grpc.unary_unary_rpc_method_handler, _unary_unary),
    "SyncUnaryUnary": (grpc.unary_unary_rpc_method_handler, _sync_unary_unary),
    "UnaryStream": (grpc.unary_stream_rpc_method_handler, _unary_stream),
    "UnaryWritten": (grpc.unary_stream_rpc_method_handler, _unary_written),
    "StreamUnary": (grpc.stream_unary_rpc_method_handler, _stream_unary),
    "StreamStream": (grpc.stream_stream_rpc_method_handler, _stream_stream),
}


@pytest.fixture
async def shapes() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    handlers = {
        name: make(fn, request_deserializer=Message.FromString, response_serializer=Message.SerializeToString)
        for name, (make, fn) in SHAPES.items()
    }
    services = _Services(server, registered=["test.Shapes"])
    services.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Shapes", handlers),))
    services.add_registered_method_handlers("test.Shapes", handlers)
    services.finish()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


async def _call(channel: grpc.aio.Channel, name: str, messages: list[bytes]) -> list[Message]:
    path, shape = f"/test.Shapes/{name}", SHAPES[name][0]
    if shape is grpc.unary_unary_rpc_method_handler:
        return [await channel.unary_unary(path, response_deserializer=Message.FromString)(messages[0], timeout=10)]
    if shape is grpc.unary_stream_rpc_method_handler:
        call = channel.unary_stream(path, response_deserializer=Message.FromString)(messages[0], timeout=10)
        return [r async for r in call]
    if shape is grpc.stream_unary_rpc_method_handler:
        return [await channel.stream_unary(path, response_deserializer=Message.FromString)(iter(messages), timeout=10)]
    call = channel.stream_stream(path, response_deserializer=Message.FromString)(iter(messages), timeout=10)
    return [r async for r in call]


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_s4_every_handler_shape_refuses_bytes_that_do_not_decode(shapes: grpc.aio.Channel, name: str) -> None:
    assert await _call(shapes, name, [GOOD]) == [Message(service="x")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(shapes, name, [BAD])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("request: not a valid encoding of the request message")
    if name.startswith("Stream"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(shapes, name, [GOOD, BAD])  # the second message of a stream
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
