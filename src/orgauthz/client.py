"""A typed client for orgauthz, synchronous (:class:`Client`) and asyncio (:class:`AsyncClient`).

Every RPC of every service has a method named after it, taking the request's fields as
keyword arguments and returning the response message (generated into
:mod:`orgauthz.client_rpcs`); list RPCs also have an ``iter_...`` method that follows the
page tokens. The decisions keep their helpers (``check``, ``batch_check``, ``list_scopes``,
``plan_objects``, ``authenticate``). A call the server refuses raises the
:mod:`orgauthz.client_errors` class of its status code (``NotFound``, ``InvalidArgument``
with the ``field`` it names, ...), all :class:`OrgAuthzClientError` and ``grpc.RpcError``::

    with Client("127.0.0.1:50051", token="s3cret", actor="user:alice") as c:
        c.create_workspace(organization="acme", id="acme-prod", handle="production")
        if c.check("user:bob", workspace="acme-prod", scope="see_flows").allowed: ...
        members = [m.user_id for m in c.iter_members(organization="acme")]

Every generated method also takes ``actor=`` (this call acts for that subject instead of the
client's actor) and ``timeout=`` (seconds; the client's ``timeout`` by default).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from orgauthz.client_errors import (
    Aborted,
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OrgAuthzClientError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    error_from,
)
from orgauthz.client_rpcs import AsyncRpcs, SyncRpcs
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "CheckResult",
    "Client",
    "Conflict",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OrgAuthzClientError",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "channel_options",
    "open_channel",
    "tls_credentials",
]

R = TypeVar("R")
ACTOR_HEADER = "x-orgauthz-actor"
_AUTHZ = "/orgauthz.v1.AuthorizationService/"
_STUB_MODULES = ("management", "invitations", "service_accounts", "user_api_keys", "teams", "acls")


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    revision: int
    reasons: list[str] = field(default_factory=list)


def tls_credentials(
    *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """Channel credentials from PEM files: ``ca`` verifies the server (None: the system's
    trusted roots); ``cert`` and ``key``, together, are the client certificate of mTLS.
    Raises ValueError naming what is missing or unreadable."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs both --tls-cert and --tls-key")

    def read(path: Path | None, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca, "CA file"),
        private_key=read(key, "client key"),
        certificate_chain=read(cert, "client certificate"),
    )


def channel_options(server_name: str) -> list[tuple[str, str]]:
    """``server_name``: the name the server's certificate must carry, when it is not the
    target's host (a certificate for ``authz.internal`` reached at ``10.0.0.7:50051``)."""
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []


def open_channel(target: str, credentials: grpc.ChannelCredentials | None, server_name: str = "") -> grpc.Channel:
    """A blocking channel: TLS with ``credentials`` (:func:`tls_credentials`), else plaintext."""
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials, options=channel_options(server_name))


def _metadata(token: str, actor: str, api_key: str) -> list[tuple[str, str]]:
    md = []
    if token:
        md.append(("authorization", f"Bearer {token}"))
    if actor:
        md.append((ACTOR_HEADER, actor))
    if api_key:
        md.append(("x-orgauthz-api-key", api_key))
    return md


def _request(
    subject: str, workspace: str, organization: str, scope: str, min_revision: int, explain: bool, obj: str = ""
) -> pb.CheckRequest:
    req = pb.CheckRequest(subject=subject, scope=scope, min_revision=min_revision, explain=explain, object=obj)
    if organization:
        req.organization = organization
    else:
        req.workspace = workspace
    return req


def _find_stub(name: str) -> Any:
    for module in ("authorization", *_STUB_MODULES):
        try:
            mod = importlib.import_module(f"orgauthz.v1.{module}_pb2_grpc")
        except ModuleNotFoundError:
            continue
        stub = getattr(mod, f"{name}Stub", None)
        if stub is not None:
            return stub
    raise KeyError(f"no service named {name!r} in orgauthz.v1")


class _MetadataInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # grpc ships no stubs
    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._md = metadata

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        """The client's headers follow the call's own; a header the call sets itself (an
        actor for this one call) replaces the client's, never joins it (the server refuses
        an identity header given twice)."""
        own = list(details.metadata or [])
        named = {key.lower() for key, _ in own}
        md = own + [(key, value) for key, value in self._md if key not in named]
        return continuation(details._replace(metadata=md), request)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


class Client(SyncRpcs):
    """Blocking client. ``credentials``: :func:`tls_credentials` (or any
    ``grpc.ChannelCredentials``) for TLS/mTLS; ``server_name`` overrides the name checked in
    the server's certificate."""

    def __init__(
        self,
        target: str,
        *,
        token: str = "",
        actor: str = "",
        api_key: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
        timeout: float = 5.0,
    ) -> None:
        channel = open_channel(target, credentials, server_name)
        self._channel = grpc.intercept_channel(channel, _MetadataInterceptor(_metadata(token, actor, api_key)))
        self._raw = channel
        self.timeout = timeout
        self.authorization = pb_grpc.AuthorizationServiceStub(self._channel)
        self._callables: dict[str, Any] = {}

    def _unary(self, method: str, request: Any, response: type[R], actor: str | None, timeout: float | None) -> R:
        """Calls ``method`` (``/orgauthz.v1.Service/Rpc``); ``actor`` replaces the client's
        for this call. Raises the :mod:`orgauthz.client_errors` class of a refusal."""
        call = self._callables.get(method)
        if call is None:
            call = self._channel.unary_unary(
                method,
                request_serializer=_serialize,
                response_deserializer=response.FromString,  # type: ignore[attr-defined]
            )
            self._callables[method] = call
        try:
            result: R = call(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=[(ACTOR_HEADER, actor)] if actor else None,
            )
        except grpc.RpcError as exc:
            raise error_from(exc, method) from exc
        return result

    def stub(self, service: str) -> Any:
        """The generated stub of ``orgauthz.v1.<service>`` with credentials attached."""
        return _find_stub(service)(self._channel)

    def check(
        self,
        subject: str,
        *,
        scope: str,
        workspace: str = "",
        organization: str = "",
        min_revision: int = 0,
        explain: bool = False,
        obj: str = "",
    ) -> CheckResult:
        """``obj``: ``deployment:<id>``, ``work_pool:<id>`` or ``block:<id>`` (R26), with a workspace."""
        r = self._unary(
            _AUTHZ + "Check",
            _request(subject, workspace, organization, scope, min_revision, explain, obj),
            pb.CheckResponse,
            None,
            None,
        )
        return CheckResult(r.allowed, r.revision, list(r.reasons))

    def batch_check(self, items: Sequence[tuple[str, ...]], *, min_revision: int = 0) -> list[CheckResult]:
        """``items``: ``(subject, workspace, scope)`` or ``(subject, workspace, scope, object)``;
        results in the same order."""
        reqs = [_request(it[0], it[1], "", it[2], 0, False, it[3] if len(it) > 3 else "") for it in items]
        r = self._unary(
            _AUTHZ + "BatchCheck",
            pb.BatchCheckRequest(items=reqs, min_revision=min_revision),
            pb.BatchCheckResponse,
            None,
            None,
        )
        return [CheckResult(x.allowed, x.revision, list(x.reasons)) for x in r.results]

    def list_scopes(self, subject: str, *, workspace: str = "", organization: str = "", obj: str = "") -> list[str]:
        req = pb.ListScopesRequest(subject=subject, object=obj)
        if organization:
            req.organization = organization
        else:
            req.workspace = workspace
        return list(self._unary(_AUTHZ + "ListScopes", req, pb.ListScopesResponse, None, None).scopes)

    def plan_objects(
        self, subject: str, *, workspace: str, kind: str, scope: str, min_revision: int = 0
    ) -> pb.PlanObjectsResponse:
        """Which objects of ``kind`` the subject may use ``scope`` on (R26): ALL, ALL_EXCEPT ids, ONLY ids."""
        req = pb.PlanObjectsRequest(
            subject=subject, workspace=workspace, kind=kind, scope=scope, min_revision=min_revision
        )
        r: pb.PlanObjectsResponse = self._unary(_AUTHZ + "PlanObjects", req, pb.PlanObjectsResponse, None, None)
        return r

    def authenticate(self, api_key: str, *, min_revision: int = 0) -> pb.AuthenticateResponse:
        """Who ``api_key`` acts as: a service account (``pnb_``) or a user (``pnu_``)."""
        r: pb.AuthenticateResponse = self._unary(
            _AUTHZ + "Authenticate",
            pb.AuthenticateRequest(api_key=api_key, min_revision=min_revision),
            pb.AuthenticateResponse,
            None,
            None,
        )
        return r

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(AsyncRpcs):
    """The asyncio twin of :class:`Client` (``grpc.aio``); metadata is added per call."""

    def __init__(
        self,
        target: str,
        *,
        token: str = "",
        actor: str = "",
        api_key: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
        timeout: float = 5.0,
    ) -> None:
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=channel_options(server_name))
            if credentials
            else grpc.aio.insecure_channel(target)
        )
        self._md = _metadata(token, actor, api_key)
        self.timeout = timeout
        self.authorization = pb_grpc.AuthorizationServiceStub(self._channel)
        self._callables: dict[str, Any] = {}

    async def _unary(
        self,
        method: str,
        request: Any,
        response: type[R],
        actor: str | None,
        timeout: float | None,  # noqa: ASYNC109  # the call's gRPC deadline, as in the sync client
    ) -> R:
        """As :meth:`Client._unary`."""
        call = self._callables.get(method)
        if call is None:
            call = self._channel.unary_unary(
                method,
                request_serializer=_serialize,
                response_deserializer=response.FromString,  # type: ignore[attr-defined]
            )
            self._callables[method] = call
        md = self._md
        if actor:
            md = [(ACTOR_HEADER, actor), *((k, v) for k, v in self._md if k != ACTOR_HEADER)]
        try:
            result: R = await call(request, timeout=self.timeout if timeout is None else timeout, metadata=md)
        except grpc.RpcError as exc:
            raise error_from(exc, method) from exc
        return result

    def stub(self, service: str) -> Any:
        """The generated stub; pass ``metadata=client.metadata`` to its calls."""
        return _find_stub(service)(self._channel)

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return list(self._md)

    async def check(
        self,
        subject: str,
        *,
        scope: str,
        workspace: str = "",
        organization: str = "",
        min_revision: int = 0,
        explain: bool = False,
        obj: str = "",
    ) -> CheckResult:
        """``obj``: ``deployment:<id>``, ``work_pool:<id>`` or ``block:<id>`` (R26), with a workspace."""
        r = await self._unary(
            _AUTHZ + "Check",
            _request(subject, workspace, organization, scope, min_revision, explain, obj),
            pb.CheckResponse,
            None,
            None,
        )
        return CheckResult(r.allowed, r.revision, list(r.reasons))

    async def batch_check(self, items: Sequence[tuple[str, ...]], *, min_revision: int = 0) -> list[CheckResult]:
        """As :meth:`Client.batch_check`."""
        reqs = [_request(it[0], it[1], "", it[2], 0, False, it[3] if len(it) > 3 else "") for it in items]
        r = await self._unary(
            _AUTHZ + "BatchCheck",
            pb.BatchCheckRequest(items=reqs, min_revision=min_revision),
            pb.BatchCheckResponse,
            None,
            None,
        )
        return [CheckResult(x.allowed, x.revision, list(x.reasons)) for x in r.results]

    async def list_scopes(
        self, subject: str, *, workspace: str = "", organization: str = "", obj: str = ""
    ) -> list[str]:
        req = pb.ListScopesRequest(subject=subject, object=obj)
        if organization:
            req.organization = organization
        else:
            req.workspace = workspace
        return list((await self._unary(_AUTHZ + "ListScopes", req, pb.ListScopesResponse, None, None)).scopes)

    async def plan_objects(
        self, subject: str, *, workspace: str, kind: str, scope: str, min_revision: int = 0
    ) -> pb.PlanObjectsResponse:
        """As :meth:`Client.plan_objects`."""
        req = pb.PlanObjectsRequest(
            subject=subject, workspace=workspace, kind=kind, scope=scope, min_revision=min_revision
        )
        r: pb.PlanObjectsResponse = await self._unary(_AUTHZ + "PlanObjects", req, pb.PlanObjectsResponse, None, None)
        return r

    async def authenticate(self, api_key: str, *, min_revision: int = 0) -> pb.AuthenticateResponse:
        """Who ``api_key`` acts as: a service account (``pnb_``) or a user (``pnu_``)."""
        r: pb.AuthenticateResponse = await self._unary(
            _AUTHZ + "Authenticate",
            pb.AuthenticateRequest(api_key=api_key, min_revision=min_revision),
            pb.AuthenticateResponse,
            None,
            None,
        )
        return r

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
