"""Requests as they arrive on the wire: bytes that do not decode, and BatchCheck's items.

**Undecodable requests** (SPEC §4: no input yields INTERNAL or UNKNOWN). gRPC answers
UNKNOWN when a request deserializer raises. :func:`tolerant` gives every method a
deserializer that returns an :class:`Undecodable` instead, and a behaviour that answers it
INVALID_ARGUMENT naming ``request``; servicer methods decorated with
:func:`orgauthz.api.errors.rpc` do that check themselves, so they are not wrapped again.

**BatchCheck's items** (:class:`BatchReader`). A platform asks the same questions again and
again; each item's encoded bytes key a bounded memo of the row they parse to, so a repeated
item costs a slice and a dict lookup instead of a message and five attribute reads. Equal
bytes always parse to the same message, so the memo cannot answer another question.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from orgauthz.domain import bounds
from orgauthz.errors import InvalidArgument
from orgauthz.v1 import authorization_pb2 as pb

Row = tuple[str, str, str, str, bool]
_ROWS_MAX = 8_192  # remembered items; all forgotten at once when full
# Only ASCII items this short are remembered: a valid one is ASCII and at most 424 bytes (a
# subject of 144 characters, an id of 128, a scope of 129, tags, lengths, explain and
# min_revision; about 1.1 KiB remembered with its row), so the memo holds at most about
# 11 MiB whatever items a caller sends.
_ITEM_MEMO_BYTES = 512
_FIELDS_MAX = 1_002  # top-level fields walked by hand; past that, protobuf's parser
_ITEMS_TAG = 0x0A  # BatchCheckRequest.items: field 1, length-delimited
_MIN_REVISION_TAG = 0x10  # BatchCheckRequest.min_revision: field 2, varint
_UINT64 = (1 << 64) - 1
# What protobuf raises for bytes that are not the message (ValueError: bad UTF-8 in some runtimes).
_DECODE_ERRORS = (DecodeError, ValueError, TypeError)


class Undecodable:
    """What a tolerant deserializer returns for bytes that are not the request message."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = not_decoded("request", "the request message", error)


def not_decoded(field: str, message: str, error: Exception) -> InvalidArgument:
    """INVALID_ARGUMENT for bytes that are not ``message``, in protobuf's own words
    ("Wire format was corrupt", "String field had bad UTF-8")."""
    reason = str(error).rpartition(": ")[2] or type(error).__name__
    return InvalidArgument(field, f"not a valid encoding of {message} ({reason})")


def _deserializer(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except _DECODE_ERRORS as exc:
            return Undecodable(exc)

    return deserialize


def _behaviour(handler: grpc.RpcMethodHandler) -> Any:
    """``handler``'s behaviour, answering INVALID_ARGUMENT for an :class:`Undecodable`."""
    fn = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    if getattr(fn, "checks_undecodable", False) and not handler.request_streaming:
        return fn  # errors.rpc checks its (single) request itself
    streaming_out = handler.unary_stream is not None or handler.stream_stream is not None
    generator = inspect.isasyncgenfunction(fn)

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        if type(request) is Undecodable:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.error))

    if handler.request_streaming:

        async def requests(source: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for request in source:
                await refuse(request, context)
                yield request

        if generator:

            async def stream_gen(source: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async for response in fn(requests(source, context), context):
                    yield response

            return stream_gen

        async def stream_call(source: Any, context: grpc.aio.ServicerContext) -> Any:
            return await _result(fn(requests(source, context), context))

        return stream_call

    if streaming_out and generator:

        async def unary_gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await refuse(request, context)
            async for response in fn(request, context):
                yield response

        return unary_gen

    async def unary_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(request, context)
        return await _result(fn(request, context))

    return unary_call


async def _result(value: Any) -> Any:
    """A behaviour's result, whether it returned it or a coroutine for it."""
    return await value if inspect.isawaitable(value) else value


def tolerant(handlers: dict[str, grpc.RpcMethodHandler]) -> dict[str, grpc.RpcMethodHandler]:
    """``handlers`` with deserializers that never raise and behaviours that refuse what did not decode."""
    out: dict[str, grpc.RpcMethodHandler] = {}
    for name, handler in handlers.items():
        if handler.request_deserializer is None:
            out[name] = handler
            continue
        fields: dict[str, Any] = {"request_deserializer": _deserializer(handler.request_deserializer)}
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            if getattr(handler, kind) is not None:
                fields[kind] = _behaviour(handler)
        out[name] = handler._replace(**fields)
    return out


_ITEM_PREFIX = bytes([_ITEMS_TAG])


def encode_varint(n: int) -> bytes:
    """``n`` (0 <= n < 2^64) as a protobuf varint."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def raw(data: bytes) -> bytes:
    """A deserializer that leaves the request encoded (BatchCheck: :class:`BatchReader`)."""
    return data


def _varint(data: bytes, pos: int, size: int = 10, below: int = 1 << 70) -> tuple[int, int] | None:
    """The varint at ``pos`` (truncated to 64 bits, as protobuf does) and the position after
    it; None if it runs past the end, past ``size`` bytes or to ``below`` and above."""
    value = shift = 0
    end = min(len(data), pos + size)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value & _UINT64, pos) if value < below else None
        shift += 7
    return None


class BatchReader:
    """Reads an encoded ``BatchCheckRequest``: its rows
    ``(subject, workspace, organization, scope, explain)`` in order, and ``min_revision``.

    The top level is walked by hand in the shape encoders write (``items`` and
    ``min_revision`` fields, lengths of at most five bytes below 2^31 and inside the
    message, at most 1,002 fields); anything else is parsed by protobuf in full, which also
    names what is malformed. An item is parsed as protobuf parses it inside the request (at
    the same nesting depth). More than 1,000 items are refused before any is parsed. A
    request that does not decode is INVALID_ARGUMENT naming ``request``; an item that does
    not decode names ``items[i]`` when the walk reached it, else ``request``.
    """

    def __init__(self, max_rows: int = _ROWS_MAX) -> None:
        self._rows: dict[bytes, Row] = {}
        self._max = max_rows

    def __call__(self, data: bytes) -> tuple[list[Row], int]:
        read = self._walk(data)
        if read is None:
            return self._parsed(data)
        items, min_revision = read
        _at_most_a_batch(len(items))
        rows = self._rows
        out: list[Row] = []
        append = out.append
        for i, item in enumerate(items):
            row = rows.get(item)
            if row is None:
                row = self._remember(item, i)
            append(row)
        return out, min_revision

    @staticmethod
    def _walk(data: bytes) -> tuple[list[bytes], int] | None:
        items: list[bytes] = []
        append = items.append
        min_revision = fields = 0
        pos, n = 0, len(data)
        while pos < n:
            fields += 1
            if fields > _FIELDS_MAX:  # a long walk in Python: protobuf's C parser instead
                return None
            tag = data[pos]
            if tag == _ITEMS_TAG:
                length = data[pos + 1] if pos + 1 < n else 0x80
                if length < 0x80:
                    start = pos + 2
                else:
                    found = _varint(data, pos + 1, 5, 1 << 31)  # protobuf's bounds on a length
                    if found is None:
                        return None
                    length, start = found
                pos = start + length
                if pos > n:
                    return None
                append(data[start:pos])
            elif tag == _MIN_REVISION_TAG:
                found = _varint(data, pos + 1)
                if found is None:
                    return None
                min_revision, pos = found
            else:
                return None
        return items, min_revision

    def _remember(self, item: bytes, i: int) -> Row:
        try:
            # Parsed inside a request of its own: at the depth a whole request's parse sees it.
            m = pb.BatchCheckRequest.FromString(_ITEM_PREFIX + encode_varint(len(item)) + item).items[0]
        except _DECODE_ERRORS as exc:
            raise not_decoded(f"items[{i}]", "a CheckRequest", exc) from None
        row = _row(m)
        if len(item) > _ITEM_MEMO_BYTES or not item.isascii():
            return row
        if len(self._rows) >= self._max:
            self._rows.clear()
        self._rows[item] = row
        return row

    @staticmethod
    def _parsed(data: bytes) -> tuple[list[Row], int]:
        try:
            request = pb.BatchCheckRequest.FromString(data)
        except _DECODE_ERRORS as exc:
            raise not_decoded("request", "the request message", exc) from None
        _at_most_a_batch(len(request.items))
        return [_row(m) for m in request.items], request.min_revision


def _row(m: pb.CheckRequest) -> Row:
    return (m.subject, m.workspace, m.organization, m.scope, m.explain)


def _at_most_a_batch(count: int) -> None:
    """More items than a batch may hold are refused before any is read (Decisions.batch
    checks the whole bound again)."""
    if count > bounds.BATCH_MAX:
        bounds.check_count("items", count, bounds.BATCH_MAX)
