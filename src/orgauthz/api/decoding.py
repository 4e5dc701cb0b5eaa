"""Requests that do not decode: INVALID_ARGUMENT naming ``request``, on every method.

gRPC runs a method's request deserializer before there is a context to answer with, and
answers UNKNOWN when it raises (SPEC §4 allows neither UNKNOWN nor INTERNAL).
:func:`refusing_undecodable` gives each method a deserializer that returns an
:class:`Undecodable` instead, and a behaviour that answers it INVALID_ARGUMENT before the
servicer runs: for a streamed request, when that message is read. The server applies it to
every service as it registers them (``orgauthz.api.server._Services``); no servicer knows of it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from orgauthz.api.errors import status_for
from orgauthz.errors import InvalidArgument

# What protobuf raises for bytes that are not the message (ValueError: bad UTF-8 in some runtimes).
_DECODE_ERRORS = (DecodeError, ValueError, TypeError)
_BEHAVIOURS = {  # (request streaming, response streaming) -> the handler's field holding the behaviour
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


class Undecodable:
    """What the deserializer returns for bytes that are not the request message."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        # protobuf's own words: "Wire format was corrupt", "String field had bad UTF-8"
        reason = str(error).rpartition(": ")[2] or type(error).__name__
        self.error = InvalidArgument("request", f"not a valid encoding of the request message ({reason})")


def refusing_undecodable(handlers: Mapping[str, grpc.RpcMethodHandler]) -> dict[str, grpc.RpcMethodHandler]:
    """``handlers`` (method name to handler, as generated code registers them), each answering
    a request that does not decode INVALID_ARGUMENT naming ``request``. A handler without a
    deserializer takes bytes, which always decode: it is returned as it is."""
    return {name: _refusing(handler) for name, handler in handlers.items()}


def _refusing(handler: Any) -> Any:
    parse = handler.request_deserializer
    if parse is None:
        return handler
    field = _BEHAVIOURS[bool(handler.request_streaming), bool(handler.response_streaming)]
    fn = getattr(handler, field)
    behaviour = _streamed_in(fn) if handler.request_streaming else _unary_in(fn)
    return handler._replace(request_deserializer=_marking_undecodable(parse), **{field: behaviour})


def _marking_undecodable(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except _DECODE_ERRORS as exc:
            return Undecodable(exc)

    return deserialize


async def _refuse(request: Undecodable, context: grpc.aio.ServicerContext) -> None:
    await context.abort(status_for(request.error), str(request.error))


def _unary_in(fn: Any) -> Any:
    # The check is inlined, and a coroutine awaited directly: this runs on every Check.
    if inspect.isasyncgenfunction(fn):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if type(request) is Undecodable:
                await _refuse(request, context)
            async for response in fn(request, context):
                yield response

        return stream

    if inspect.iscoroutinefunction(fn):

        async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if type(request) is Undecodable:
                await _refuse(request, context)
            return await fn(request, context)

        return coroutine

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Undecodable:
            await _refuse(request, context)
        return await _result(fn(request, context))

    return call


def _streamed_in(fn: Any) -> Any:
    if inspect.isasyncgenfunction(fn):

        async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for response in fn(_checked(requests, context), context):
                yield response

        return stream

    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await _result(fn(_checked(requests, context), context))

    return call


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if type(request) is Undecodable:
            await _refuse(request, context)
        yield request


async def _result(value: Any) -> Any:
    """A behaviour's result, whether it returned it or a coroutine for it."""
    return await value if inspect.isawaitable(value) else value
