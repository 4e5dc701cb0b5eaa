"""``orgauthz.v1.AuthorizationService``: thin translation around :class:`Decisions`.

``BatchCheck`` answers with its response already encoded (:class:`ResultEncoder`): a
result is ``allowed`` and ``revision`` for nearly every item, so each distinct pair is
encoded once and a response is those bytes joined, instead of one ``CheckResponse`` built
per item. :func:`add_to_server` registers the service with a serializer for ``BatchCheck``
that passes those bytes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import Any

import grpc

from orgauthz.api.errors import rpc
from orgauthz.api.metrics import Metrics
from orgauthz.engine.decisions import Decisions, Question
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["AuthorizationService"]
_RESULTS_TAG = b"\x0a"  # BatchCheckResponse.results: field 1, length-delimited
_MEMO_MAX = 4096  # distinct (allowed, revision) pairs kept; all forgotten at once when full


class ResultEncoder:
    """Encodes one ``BatchCheckResponse.results`` entry (tag, length, ``CheckResponse``).

    Entries without reasons depend only on ``(allowed, revision)`` and are remembered; the
    bytes are what ``BatchCheckResponse.SerializeToString`` writes for the same results
    (tests/decisions/test_batch_encoding.py compares them).
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[bool, int], bytes] = {}

    def __call__(self, allowed: bool, revision: int, reasons: Sequence[str]) -> bytes:
        if reasons:
            return self._entry(pb.CheckResponse(allowed=allowed, revision=revision, reasons=reasons))
        key = (allowed, revision)
        entry = self._memo.get(key)
        if entry is None:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            entry = self._memo[key] = self._entry(pb.CheckResponse(allowed=allowed, revision=revision))
        return entry

    @staticmethod
    def _entry(result: pb.CheckResponse) -> bytes:
        body: bytes = result.SerializeToString()
        return _RESULTS_TAG + encode_varint(len(body)) + body


def encode_varint(n: int) -> bytes:
    """``n`` (0 <= n < 2^64) as a protobuf varint."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _encoded(response: bytes | pb.BatchCheckResponse) -> bytes:
    if isinstance(response, bytes):
        return response
    encoded: bytes = response.SerializeToString()
    return encoded


def add_to_server(servicer: AuthorizationServicer, server: Any) -> None:
    """What the generated ``add_AuthorizationServiceServicer_to_server`` does, except that
    ``BatchCheck``'s answer goes out as the bytes it returns (:func:`_encoded`)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=getattr(pb, method.input_type.name).FromString,
            response_serializer=_encoded
            if name == "BatchCheck"
            else getattr(pb, method.output_type.name).SerializeToString,
        )
        for name, method in SERVICE.methods_by_name.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)


def _question(m: Any) -> Question:
    return Question(m.subject, m.workspace, m.organization, m.scope, m.explain, m.object)


class AuthorizationServicer(pb_grpc.AuthorizationServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, decisions: Decisions, metrics: Metrics, authenticator: Any = None) -> None:
        self.decisions = decisions
        self.metrics = metrics
        self.authenticator = authenticator
        self.encode = ResultEncoder()

    # Check and BatchCheck time themselves with perf_counter rather than Metrics.timed: the
    # context manager costs more than the cached decision it would time.
    @rpc
    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:
        start = perf_counter()
        try:
            d = await self.decisions.check(_question(request), request.min_revision)
        finally:
            self.metrics.observe("Check", perf_counter() - start)
        if d.reasons:
            return pb.CheckResponse(allowed=d.allowed, revision=d.revision, reasons=d.reasons)
        return pb.CheckResponse(allowed=d.allowed, revision=d.revision)

    @rpc
    async def BatchCheck(self, request: pb.BatchCheckRequest, context: grpc.aio.ServicerContext) -> bytes:
        """Answers the encoded ``BatchCheckResponse`` (see :func:`add_to_server`)."""
        start = perf_counter()
        try:
            rows: list[tuple[str, str, str, str, bool, str]] = [
                (m.subject, m.workspace, m.organization, m.scope, m.explain, m.object) for m in request.items
            ]
            decisions = await self.decisions.batch(rows, request.min_revision)
        finally:
            self.metrics.observe("BatchCheck", perf_counter() - start)
        encode = self.encode
        return b"".join([encode(d.allowed, d.revision, d.reasons) for d in decisions])

    @rpc
    async def ListScopes(
        self, request: pb.ListScopesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListScopesResponse:
        scopes, rev = await self.decisions.scopes(
            request.subject, request.workspace, request.organization, request.min_revision, request.object
        )
        return pb.ListScopesResponse(scopes=scopes, revision=rev)

    @rpc
    async def PlanObjects(
        self, request: pb.PlanObjectsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlanObjectsResponse:
        plan, rev = await self.decisions.plan(
            request.subject, request.workspace, request.kind, request.scope, request.min_revision
        )
        return pb.PlanObjectsResponse(kind=pb.PlanObjectsResponse.Kind.Value(plan.kind), ids=plan.ids, revision=rev)

    @rpc
    async def ListAccessibleWorkspaces(
        self, request: pb.ListAccessibleWorkspacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccessibleWorkspacesResponse:
        found, token, rev = await self.decisions.accessible(
            request.subject, request.page_size, request.page_token, request.min_revision
        )
        return pb.ListAccessibleWorkspacesResponse(
            workspaces=[pb.AccessibleWorkspace(workspace=w, organization=o, scopes=s) for w, o, s in found],
            next_page_token=token,
            revision=rev,
        )

    @rpc
    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthenticateResponse:
        if self.authenticator is None:
            from orgauthz.errors import Unauthenticated

            raise Unauthenticated("invalid API key")
        found = await self.authenticator.authenticate(request.api_key, request.min_revision)
        if found.org_id:  # a service account's key
            return pb.AuthenticateResponse(
                service_account=found.id, organization=found.org_id, subject=found.subject, revision=found.revision
            )
        return pb.AuthenticateResponse(user=found.id, subject=found.subject, revision=found.revision)
