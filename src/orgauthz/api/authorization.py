"""``orgauthz.v1.AuthorizationService``: thin translation around :class:`Decisions`."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import grpc

from orgauthz.api.errors import rpc
from orgauthz.api.metrics import Metrics
from orgauthz.engine.decisions import Decisions, Question
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc


def _question(m: Any) -> Question:
    return Question(m.subject, m.workspace, m.organization, m.scope, m.explain)


class AuthorizationServicer(pb_grpc.AuthorizationServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, decisions: Decisions, metrics: Metrics, authenticator: Any = None) -> None:
        self.decisions = decisions
        self.metrics = metrics
        self.authenticator = authenticator

    # Check and BatchCheck time themselves with perf_counter rather than Metrics.timed: the
    # context manager costs more than the cached decision it would time.
    @rpc
    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:
        start = perf_counter()
        try:
            d = await self.decisions.check(_question(request), request.min_revision)
        finally:
            self.metrics.observe("Check", perf_counter() - start)
        self.metrics.decided(d.allowed)
        if d.reasons:
            return pb.CheckResponse(allowed=d.allowed, revision=d.revision, reasons=d.reasons)
        return pb.CheckResponse(allowed=d.allowed, revision=d.revision)

    @rpc
    async def BatchCheck(
        self, request: pb.BatchCheckRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchCheckResponse:
        start = perf_counter()
        try:
            results = await self.decisions.batch(
                [Question(m.subject, m.workspace, m.organization, m.scope, m.explain) for m in request.items],
                request.min_revision,
            )
        finally:
            self.metrics.observe("BatchCheck", perf_counter() - start)
        response = pb.BatchCheckResponse()
        add = response.results.add
        allowed = 0
        for d in results:
            allowed += d.allowed
            if d.reasons:
                add(allowed=d.allowed, revision=d.revision, reasons=d.reasons)
            else:
                add(allowed=d.allowed, revision=d.revision)
        self.metrics.decided_many(allowed, len(results) - allowed)
        return response

    @rpc
    async def ListScopes(
        self, request: pb.ListScopesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListScopesResponse:
        scopes, rev = await self.decisions.scopes(
            request.subject, request.workspace, request.organization, request.min_revision
        )
        return pb.ListScopesResponse(scopes=scopes, revision=rev)

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
        sa, org = await self.authenticator.authenticate(request.api_key)
        return pb.AuthenticateResponse(service_account=sa, organization=org, subject=f"service_account:{sa}")
