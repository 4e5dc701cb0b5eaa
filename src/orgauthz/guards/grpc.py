"""A ``grpc.aio`` server interceptor that asks the sidecar before a service's own RPCs run.

::

    guard = GuardInterceptor("127.0.0.1:50051", token=SECRET, rules={
        "/deploy.v1.Deployments/Run": Rule("run_deployments", workspace="{workspace}",
                                           object="deployment:{deployment_id}"),
        "/deploy.v1.Deployments/List": Rule("see_deployments", workspace=lambda req: req.workspace),
        "/grpc.health.v1.Health/Check": OPEN,
    })
    server = grpc.aio.server(interceptors=[guard])

The table maps full method names to a :class:`Rule` (a template's fields are the request
message's fields) or :data:`OPEN` (no check). A method not in the table is refused with
PERMISSION_DENIED unless ``unlisted=OPEN``. The subject comes from call metadata
(:class:`~orgauthz.guards.FromHeader`, default ``x-orgauthz-subject``, or
:class:`~orgauthz.guards.FromApiKey`); the handler reads it with :func:`current_subject`.

Denied: PERMISSION_DENIED ``not allowed: <scope>``. No subject: UNAUTHENTICATED. The sidecar
down, erring or slower than ``timeout``: UNAVAILABLE, counted in :attr:`GuardInterceptor.counts`.
A request-streaming method is decided before its first message, so its rule takes constants
or functions of ``None`` only. A rule that cannot be applied to a request (a template naming a
field the message lacks) is INTERNAL, logged, and the handler does not run.

Importing this module needs grpcio only (no FastAPI).
"""

from __future__ import annotations

import contextvars
import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from orgauthz.guards.core import Ask, FromApiKey, FromHeader, GuardCounts, Part, Sidecar, SubjectSource, Value, Verdict
from orgauthz.guards.core import check_rule as _check_rule

log = logging.getLogger(__name__)

_SUBJECT: contextvars.ContextVar[str] = contextvars.ContextVar("orgauthz_guard_subject", default="")

_STATUS = {
    Verdict.DENY: grpc.StatusCode.PERMISSION_DENIED,
    Verdict.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Verdict.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def current_subject() -> str:
    """The subject the guard allowed for the call being handled; "" outside a guarded call."""
    return _SUBJECT.get()


class _Open(enum.Enum):
    OPEN = "open"


OPEN = _Open.OPEN
"""A table entry (or ``unlisted``) that lets a method through unchecked: health, reflection."""


@dataclass(frozen=True)
class Rule:
    """``scope`` in ``workspace`` (on ``object``, R26) or in ``organization``: each a constant,
    a template of the request message's fields (``"{workspace}"``, ``"deployment:{id}"``), or a
    function of the request message. ValueError for neither or both of workspace and
    organization, or an object without a workspace."""

    scope: str
    workspace: Value = None
    organization: Value = None
    object: Value = None
    parts: tuple[Part, Part, Part] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", _check_rule(self.scope, self.workspace, self.organization, self.object))

    async def ask(self, request: Any) -> Ask:
        ws, org, obj = self.parts

        def read(name: str) -> object:
            if request is None or not hasattr(request, name):
                raise LookupError(f"the request has no field {name!r}")
            return getattr(request, name)

        return Ask(
            self.scope, await ws.render(request, read), await org.render(request, read), await obj.render(request, read)
        )


def _values(metadata: Sequence[tuple[str, Any]] | None) -> Callable[[str], Sequence[str]]:
    def values(name: str) -> Sequence[str]:
        return [v for k, v in metadata or () if k == name and isinstance(v, str)]

    return values


class _Refused(Exception):
    """The refusal a call is aborted with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Guards the methods of the server it is installed on by ``rules``; asks the sidecar at
    ``target``. ``timeout``, ``subject``, ``token``, ``credentials``, ``server_name``: as for
    :class:`orgauthz.guards.fastapi.Guard`. ``unlisted``: what a method not in ``rules`` gets,
    None (the default: refused, PERMISSION_DENIED) or :data:`OPEN`."""

    def __init__(
        self,
        target: str,
        *,
        rules: Mapping[str, Rule | _Open],
        subject: SubjectSource = FromHeader(),  # noqa: B008  # frozen, so one shared default is safe
        unlisted: _Open | None = None,
        timeout: float = 1.0,
        token: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
    ) -> None:
        self.rules = dict(rules)
        self.unlisted = unlisted
        self._sidecar = Sidecar(
            target, subject=subject, timeout=timeout, token=token, credentials=credentials, server_name=server_name
        )

    @property
    def counts(self) -> GuardCounts:
        return self._sidecar.counts

    async def aclose(self) -> None:
        """Closes the channel opened in the running loop."""
        await self._sidecar.aclose()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        rule = self.rules.get(details.method, self.unlisted)
        if rule is OPEN:
            return handler
        if rule is None:
            self._sidecar.counts.denied += 1
            return _wrap(handler, self._refuse(grpc.StatusCode.PERMISSION_DENIED, "method not guarded"))
        return _wrap(handler, self._admit(rule, details.invocation_metadata))

    @staticmethod
    def _refuse(code: grpc.StatusCode, message: str) -> Callable[[Any], Awaitable[str]]:
        async def refuse(_request: Any) -> str:
            raise _Refused(code, message)

        return refuse

    def _admit(self, rule: Rule, metadata: Sequence[tuple[str, Any]] | None) -> Callable[[Any], Awaitable[str]]:
        async def admit(request: Any) -> str:
            async def ask() -> Ask:
                try:
                    return await rule.ask(request)
                except Exception:
                    log.exception("the guard's rule for %s cannot be applied to its request", rule.scope)
                    raise _Refused(grpc.StatusCode.INTERNAL, "the method's authorization rule is wrong") from None

            outcome = await self._sidecar.decide(_values(metadata), ask)
            if outcome.verdict is Verdict.ALLOW:
                return outcome.subject
            raise _Refused(_STATUS[outcome.verdict], outcome.reason)

        return admit


def _wrap(handler: grpc.RpcMethodHandler, admit: Callable[[Any], Awaitable[str]]) -> grpc.RpcMethodHandler:
    """A handler of the same shape that runs ``handler`` only once ``admit`` (given the request
    message, or None for a request stream) returned a subject; aborts with its refusal otherwise."""

    async def subject_for(request: Any, context: grpc.aio.ServicerContext) -> str:
        try:
            return await admit(request)
        except _Refused as refused:
            await context.abort(refused.code, refused.message)
            raise  # pragma: no cover  # abort raises

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        reset = _SUBJECT.set(await subject_for(None if handler.request_streaming else request, context))
        try:
            behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
        finally:
            _SUBJECT.reset(reset)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        reset = _SUBJECT.set(await subject_for(None if handler.request_streaming else request, context))
        try:
            behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
            result = behavior(request, context)
            if inspect.isawaitable(result):  # a handler that writes with context.write
                await result
            elif hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:
                for item in result:
                    yield item
        finally:
            _SUBJECT.reset(reset)

    kwargs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


__all__ = ["OPEN", "FromApiKey", "FromHeader", "GuardCounts", "GuardInterceptor", "Rule", "current_subject"]
