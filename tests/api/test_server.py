"""How App adds services to grpc.aio: only AuthorizationService methods are registered
methods (grpc.aio waits on one pending request per registered method for every call);
every other service is reachable through its generic handler."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from orgauthz.api.server import App, _LookupOnly
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
        _LookupOnly(server),  # type: ignore[arg-type]  # a recorder in place of grpc.aio.Server
    )
    assert server.registered == []
    assert len(server.generic) == 1


async def test_a_management_call_is_answered_without_being_a_registered_method(app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = management_pb2_grpc.MemberServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListMembers(management_pb2.ListMembersRequest(organization="o-nope"), timeout=10)
    # found and run: the servicer asks for an actor (not UNIMPLEMENTED)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "x-orgauthz-actor" in (raised.value.details() or "")


def test_lookup_only_registers_each_service_once_tolerant_and_keeps_a_generic_only_one() -> None:
    """Generated code passes a service to both registration calls: it is registered once,
    with tolerant handlers; a service that only comes through the generic call still is."""
    from grpc_health.v1 import health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    server = _Recorder()
    lookup = _LookupOnly(server)  # type: ignore[arg-type]  # a recorder in place of grpc.aio.Server
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
