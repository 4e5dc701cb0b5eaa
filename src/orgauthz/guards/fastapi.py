"""A FastAPI/Starlette dependency that asks the sidecar before a route runs (``orgauthz[fastapi]``).

::

    guard = Guard("127.0.0.1:50051", token=SECRET, subject=FromHeader("x-orgauthz-subject"))

    @app.post("/workspaces/{ws}/deployments/{id}/run")
    async def run(ws: str, id: str, subject: str = Depends(guard.require_scope(
            "run_deployments", workspace="{ws}", object="deployment:{id}"))) -> ...

Allowed: the route runs; the dependency's value is the subject (also ``request.state.orgauthz_subject``).
Denied: 403 ``{"detail": "not allowed: run_deployments"}``, the same whether or not the
workspace or object exists. No subject: 401. The sidecar down, erring or slower than
``timeout``: 503, counted in :attr:`Guard.counts`. Never an allow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request

from orgauthz.guards.core import (
    Ask,
    FromApiKey,
    FromHeader,
    GuardCounts,
    Sidecar,
    SubjectSource,
    Value,
    Verdict,
    check_rule,
)

UNAVAILABLE_RETRY_AFTER_S = "1"


class Guard:
    """Makes route dependencies that ask the sidecar at ``target`` (``host:port`` or
    ``unix:/path``). ``subject``: :class:`~orgauthz.guards.FromHeader` (default
    ``x-orgauthz-subject``, set by an authenticated proxy) or :class:`~orgauthz.guards.FromApiKey`.
    ``timeout``: seconds for the whole decision (key and check). ``token``, ``credentials``,
    ``server_name``: this service's own credentials, as for :class:`~orgauthz.client.AsyncClient`."""

    def __init__(
        self,
        target: str,
        *,
        subject: SubjectSource = FromHeader(),  # noqa: B008  # frozen, so one shared default is safe
        timeout: float = 1.0,
        token: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
    ) -> None:
        self._sidecar = Sidecar(
            target, subject=subject, timeout=timeout, token=token, credentials=credentials, server_name=server_name
        )

    @property
    def counts(self) -> GuardCounts:
        return self._sidecar.counts

    async def aclose(self) -> None:
        """Closes the channel opened in the running loop (call it at the app's shutdown)."""
        await self._sidecar.aclose()

    def require_scope(
        self, scope: str, *, workspace: Value = None, organization: Value = None, object: Value = None
    ) -> Callable[[Request], Awaitable[str]]:
        """A dependency requiring ``scope`` in ``workspace`` (on ``object``, R26) or in
        ``organization``. Each is a constant, a template of the route's path parameters
        (``"{ws}"``, ``"deployment:{id}"``) or a function of the ``Request``. Raises ValueError
        for a rule with neither or both of workspace and organization, or an object without a
        workspace; a template naming a parameter the route lacks raises LookupError (a 500)."""
        ws, org, obj = check_rule(scope, workspace, organization, object)
        sidecar = self._sidecar
        bearer = isinstance(sidecar.subject, FromApiKey)

        async def require(request: Request) -> str:
            def field(name: str) -> str:
                if name not in request.path_params:
                    raise LookupError(f"require_scope({scope!r}): the route has no path parameter {name!r}")
                return str(request.path_params[name])

            async def ask() -> Ask:
                return Ask(
                    scope=scope,
                    workspace=await ws.render(request, field),
                    organization=await org.render(request, field),
                    obj=await obj.render(request, field),
                )

            def headers(name: str) -> Sequence[str]:
                return request.headers.getlist(name)

            outcome = await sidecar.decide(headers, ask)
            if outcome.verdict is Verdict.ALLOW:
                request.state.orgauthz_subject = outcome.subject
                return outcome.subject
            if outcome.verdict is Verdict.DENY:
                raise HTTPException(403, outcome.reason)
            if outcome.verdict is Verdict.UNAUTHENTICATED:
                raise HTTPException(401, outcome.reason, headers={"WWW-Authenticate": "Bearer"} if bearer else None)
            raise HTTPException(503, outcome.reason, headers={"Retry-After": UNAVAILABLE_RETRY_AFTER_S})

        return require


__all__ = ["FromApiKey", "FromHeader", "Guard", "GuardCounts"]
