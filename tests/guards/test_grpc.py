"""orgauthz.guards.grpc: a real grpc.aio server whose own small service (generic handlers,
``GetAclRequest`` as its request: it has ``workspace`` and ``object``) is guarded by the
interceptor, asking a real orgauthz server holding the demo organization. Allowed runs the
handler with the subject; denied is PERMISSION_DENIED and the handler does not run; a method
not in the table is refused; the sidecar down or slow is UNAVAILABLE and counted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2

from orgauthz.api.server import App
from orgauthz.guards import FromApiKey, FromHeader
from orgauthz.guards.grpc import OPEN, GuardInterceptor, Rule, current_subject
from orgauthz.v1 import acls_pb2
from tests.guards.conftest import Keys

C = grpc.StatusCode
SERVICE = "deploy.v1.Deployments"
Req = acls_pb2.GetAclRequest
Reply = wrappers_pb2.StringValue

RULES: dict[str, Rule | Any] = {
    f"/{SERVICE}/Run": Rule("run_deployments", workspace="{workspace}", object="{object}"),
    f"/{SERVICE}/SeeFlows": Rule("see_flows", workspace=lambda request: request.workspace),
    f"/{SERVICE}/Watch": Rule("see_flows", workspace="{workspace}"),
    f"/{SERVICE}/Invite": Rule("create:invitation", organization="acme"),
    f"/{SERVICE}/Broken": Rule("see_flows", workspace="{no_such_field}"),
    f"/{SERVICE}/Ping": OPEN,
    # Unlisted: in the service, not in the table.
}


class Deployments:
    """The guarded service; ``ran`` lists the methods whose handler ran, with the subject it saw."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(name: str) -> grpc.RpcMethodHandler:
            async def behave(request: Req, context: Any) -> Reply:
                self.ran.append(f"{name} {current_subject()}")
                return Reply(value=current_subject())

            return grpc.unary_unary_rpc_method_handler(
                behave, request_deserializer=Req.FromString, response_serializer=Reply.SerializeToString
            )

        async def watch(request: Req, context: Any) -> AsyncIterator[Reply]:
            self.ran.append(f"Watch {current_subject()}")
            for n in range(2):
                yield Reply(value=f"{current_subject()} {n}")

        methods = {name: unary(name) for name in ("Run", "SeeFlows", "Invite", "Broken", "Ping", "Unlisted")}
        methods["Watch"] = grpc.unary_stream_rpc_method_handler(
            watch, request_deserializer=Req.FromString, response_serializer=Reply.SerializeToString
        )
        return grpc.method_handlers_generic_handler(SERVICE, methods)


@asynccontextmanager
async def guarded(guard: GuardInterceptor) -> AsyncIterator[tuple[Deployments, Callable[..., Any]]]:
    """A grpc.aio server with ``guard`` installed; yields the service and ``call(method, request,
    metadata)`` answering (status, reply values)."""
    service = Deployments()
    server = grpc.aio.server(interceptors=[guard])
    server.add_generic_rpc_handlers((service.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def call(method: str, request: Req, metadata: tuple[tuple[str, str], ...] = ()) -> tuple[C, list[str]]:
        path = f"/{SERVICE}/{method}"
        try:
            if method == "Watch":
                stream = channel.unary_stream(path, Req.SerializeToString, Reply.FromString)
                return C.OK, [r.value async for r in stream(request, metadata=metadata, timeout=10)]
            rpc = channel.unary_unary(path, Req.SerializeToString, Reply.FromString)
            return C.OK, [(await rpc(request, metadata=metadata, timeout=10)).value]
        except grpc.aio.AioRpcError as exc:
            return exc.code(), [exc.details() or ""]

    try:
        yield service, call
    finally:
        await channel.close()
        await server.stop(0)
        await guard.aclose()


def as_(subject: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-subject", subject),)


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
def header_guard(sidecar: str) -> GuardInterceptor:
    return GuardInterceptor(sidecar, rules=RULES, subject=FromHeader())


async def test_allowed_runs_the_handler_with_the_subject(header_guard: GuardInterceptor) -> None:
    async with guarded(header_guard) as (service, call):
        assert await call("SeeFlows", Req(workspace="acme-prod"), as_("user:carol")) == (C.OK, ["user:carol"])
        assert await call("Invite", Req(), as_("user:alice")) == (C.OK, ["user:alice"])
        assert await call("Watch", Req(workspace="acme-prod"), as_("user:bob")) == (C.OK, ["user:bob 0", "user:bob 1"])
    assert service.ran == ["SeeFlows user:carol", "Invite user:alice", "Watch user:bob"]
    assert header_guard.counts.allowed == 3


async def test_denied_is_permission_denied_and_the_handler_does_not_run(header_guard: GuardInterceptor) -> None:
    async with guarded(header_guard) as (service, call):
        sandbox = await call("SeeFlows", Req(workspace="acme-sandbox"), as_("user:bob"))
        missing = await call("SeeFlows", Req(workspace="no-such-workspace"), as_("user:bob"))
        invalid = await call("SeeFlows", Req(workspace=""), as_("user:bob"))
        invite = await call("Invite", Req(), as_("user:bob"))
        watch = await call("Watch", Req(workspace="acme-sandbox"), as_("user:bob"))
    assert sandbox == missing == invalid == (C.PERMISSION_DENIED, ["not allowed: see_flows"])
    assert invite == (C.PERMISSION_DENIED, ["not allowed: create:invitation"])
    assert watch == (C.PERMISSION_DENIED, ["not allowed: see_flows"])
    assert service.ran == []
    assert header_guard.counts.denied == 5


async def test_r26_r27_the_object_acl_decides_too(header_guard: GuardInterceptor) -> None:
    etl = Req(workspace="acme-prod", object="deployment:nightly-etl")  # governed by prod-pool's ACL
    async with guarded(header_guard) as (service, call):
        assert (await call("Run", etl, as_("user:bob")))[0] == C.PERMISSION_DENIED
        assert await call("Run", etl, as_("service_account:ci-bot")) == (C.OK, ["service_account:ci-bot"])
        adhoc = Req(workspace="acme-prod", object="deployment:adhoc")
        assert await call("Run", adhoc, as_("user:bob")) == (C.OK, ["user:bob"])
    assert service.ran == ["Run service_account:ci-bot", "Run user:bob"]


async def test_a_method_not_in_the_table_is_refused_and_open_ones_pass(header_guard: GuardInterceptor) -> None:
    async with guarded(header_guard) as (service, call):
        unlisted = await call("Unlisted", Req(workspace="acme-prod"), as_("user:alice"))
        ping = await call("Ping", Req())
    assert unlisted == (C.PERMISSION_DENIED, ["method not guarded"])
    assert ping == (C.OK, [""])  # no subject asked for, none given
    assert service.ran == ["Ping "]


async def test_unlisted_open_lets_methods_not_in_the_table_through(sidecar: str) -> None:
    guard = GuardInterceptor(sidecar, rules=RULES, unlisted=OPEN)
    async with guarded(guard) as (service, call):
        assert await call("Unlisted", Req()) == (C.OK, [""])
    assert service.ran == ["Unlisted "]


async def test_no_subject_is_unauthenticated(header_guard: GuardInterceptor) -> None:
    ws = Req(workspace="acme-prod")
    async with guarded(header_guard) as (service, call):
        answers = [
            await call("SeeFlows", ws),
            await call("SeeFlows", ws, as_("carol")),
            await call("SeeFlows", ws, (*as_("user:carol"), *as_("user:alice"))),
        ]
    assert [code for code, _ in answers] == [C.UNAUTHENTICATED] * 3
    assert service.ran == []
    assert header_guard.counts.unauthenticated == 3


async def test_a_rule_that_cannot_be_applied_is_internal_and_the_handler_does_not_run(
    header_guard: GuardInterceptor,
) -> None:
    async with guarded(header_guard) as (service, call):
        assert await call("Broken", Req(workspace="acme-prod"), as_("user:alice")) == (
            C.INTERNAL,
            ["the method's authorization rule is wrong"],
        )
    assert service.ran == []


async def test_subject_from_an_api_key_in_call_metadata(sidecar: str, keys: Keys) -> None:
    guard = GuardInterceptor(sidecar, rules=RULES, subject=FromApiKey())
    etl = Req(workspace="acme-prod", object="deployment:nightly-etl")
    async with guarded(guard) as (service, call):
        assert await call("SeeFlows", Req(workspace="acme-prod"), bearer(keys.bob)) == (C.OK, ["user:bob"])
        assert await call("Run", etl, bearer(keys.ci_bot)) == (C.OK, ["service_account:ci-bot"])
        assert (await call("Run", etl, bearer(keys.bob)))[0] == C.PERMISSION_DENIED
        assert await call("SeeFlows", Req(workspace="acme-prod"), bearer("pnu_" + "x" * 40)) == (
            C.UNAUTHENTICATED,
            ["invalid API key"],
        )
        assert (await call("SeeFlows", Req(workspace="acme-prod"), as_("user:alice")))[0] == C.UNAUTHENTICATED
    assert service.ran == ["SeeFlows user:bob", "Run service_account:ci-bot"]
    assert guard.counts.failed_closed == 0


async def test_sidecar_down_is_unavailable_and_counted(closed_port: str) -> None:
    guard = GuardInterceptor(closed_port, rules=RULES)
    async with guarded(guard) as (service, call):
        answers = [
            await call("SeeFlows", Req(workspace="acme-prod"), as_("user:alice")),
            await call("Watch", Req(workspace="acme-prod"), as_("user:alice")),
        ]
    assert answers == [(C.UNAVAILABLE, ["authorization is unavailable"])] * 2
    assert service.ran == []
    assert guard.counts.unavailable == 2
    assert guard.counts.allowed == 0


async def test_a_sidecar_stopped_after_answering_is_unavailable(app: App, sidecar: str) -> None:
    guard = GuardInterceptor(sidecar, rules=RULES)
    async with guarded(guard) as (service, call):
        before = await call("SeeFlows", Req(workspace="acme-prod"), as_("user:bob"))
        assert app.server is not None
        await app.server.stop(0)
        after = await call("SeeFlows", Req(workspace="acme-prod"), as_("user:bob"))
    assert (before[0], after[0]) == (C.OK, C.UNAVAILABLE)
    assert service.ran == ["SeeFlows user:bob"]
    assert guard.counts.unavailable == 1


@pytest.mark.parametrize("subject", ["header", "api_key"])
async def test_a_slow_sidecar_times_out_is_unavailable_and_counted(slow_sidecar: str, subject: str) -> None:
    source = FromHeader() if subject == "header" else FromApiKey()
    headers = as_("user:bob") if subject == "header" else bearer("pnb_" + "k" * 40)
    guard = GuardInterceptor(slow_sidecar, rules=RULES, subject=source, timeout=0.2)
    async with guarded(guard) as (service, call):
        started = time.monotonic()
        answer = await call("SeeFlows", Req(workspace="acme-prod"), headers)
        assert time.monotonic() - started < 2.0
    assert answer == (C.UNAVAILABLE, ["authorization is unavailable"])
    assert service.ran == []
    assert guard.counts.timeouts == 1
    assert guard.counts.unavailable == 0


def test_the_grpc_guard_imports_without_fastapi_or_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['starlette'] = None\n"
        "import orgauthz.guards.grpc, orgauthz.guards\n"
        "loaded = {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        "assert not loaded & {'starlette', 'sqlalchemy', 'casbin', 'redis'}, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
