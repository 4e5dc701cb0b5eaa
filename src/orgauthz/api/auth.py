"""Who is calling: the caller (another service) and the actor it acts for.

**Caller authentication** happens once per call, before any servicer runs:

- mTLS (``tls_cert``, ``tls_key`` and ``tls_client_ca``): the TLS handshake refuses a
  client without a certificate signed by the CA, so the transport has authenticated it;
- a shared secret (``auth_token``): metadata ``authorization: Bearer <token>``, compared in
  constant time by :class:`CallerAuthInterceptor`;
- both configured: both are required;
- ``insecure_dev``: nobody is checked (a loud warning is logged at start).

Without any of these every call is UNAUTHENTICATED (fail closed). TLS without a client CA
only encrypts; it does not authenticate the caller. Health checks stay open for probes.

**The actor** of a management call (:func:`resolve_actor`) comes from metadata:
``x-orgauthz-actor: user:<id>`` asserted by the authenticated caller, or
``x-orgauthz-api-key: pnb_...`` for a service account presenting its own key. A missing
actor is UNAUTHENTICATED; a malformed one, or both headers at once, INVALID_ARGUMENT
naming the header.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from orgauthz.config import Settings
from orgauthz.domain import bounds
from orgauthz.errors import InvalidArgument, Unauthenticated
from orgauthz.services.context import Actor, Management

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
ACTOR_HEADER = "x-orgauthz-actor"
API_KEY_HEADER = "x-orgauthz-api-key"
API_KEY_MAX = 256
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def _deny_handler(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""

    async def unary(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover  # makes this an async generator; abort raises

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


class CallerAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Requires ``authorization: Bearer <token>``; with ``token=None`` refuses every call.

    The expected header is computed once; each call costs one scan of its metadata and
    one constant-time comparison.
    """

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None
        self._message = (
            "missing or wrong caller credentials" if token else "no caller authentication is configured on this server"
        )

    def authenticated(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        if self._expected is None:
            return False
        for key, value in metadata or ():
            if key == AUTHORIZATION:
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or self.authenticated(handler_call_details.invocation_metadata):
            return handler
        if handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        return _deny_handler(handler, self._message)


def interceptors_for(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors :class:`~orgauthz.api.server.App` installs; logs how callers are checked."""
    if settings.insecure_dev:
        log.warning(
            "INSECURE DEVELOPMENT MODE: callers are NOT authenticated; anyone who can reach "
            "this port may assert any actor. Never run like this in production."
        )
        return []
    mtls = bool(settings.tls_cert and settings.tls_client_ca)
    if settings.auth_token:
        log.info("callers authenticate with the shared secret%s", " and a client certificate" if mtls else "")
        return [CallerAuthInterceptor(settings.auth_token)]
    if mtls:
        log.info("callers authenticate with client certificates (mTLS)")
        return []
    log.error(
        "no caller authentication configured (auth_token, or tls_cert/tls_key/tls_client_ca): "
        "every call except health checks is refused with UNAUTHENTICATED"
    )
    return [CallerAuthInterceptor(None)]


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when ``tls_cert`` is set; client certificates required with ``tls_client_ca``."""
    if not settings.tls_cert:
        return None
    if not settings.tls_key:
        raise ValueError("tls_key is required with tls_cert")
    ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


# -- the actor of a management call ---------------------------------------------------------


def _headers(context: grpc.aio.ServicerContext) -> tuple[str, str]:
    actor = key = ""
    for name, value in context.invocation_metadata() or ():
        if name == ACTOR_HEADER:
            actor = value if isinstance(value, str) else ""
        elif name == API_KEY_HEADER:
            key = value if isinstance(value, str) else ""
    return actor, key


async def resolve_actor(context: grpc.aio.ServicerContext, management: Management) -> Actor:
    """The actor of a management call.

    Raises Unauthenticated when no actor is given or the API key is unknown, expired or
    revoked; InvalidArgument (naming the header) when the header is malformed, names a
    service account without its key, or both headers are given.
    """
    actor = await optional_actor(context, management)
    if actor is None:
        raise Unauthenticated(f"a management call needs {ACTOR_HEADER} or {API_KEY_HEADER} metadata")
    return actor


async def optional_actor(context: grpc.aio.ServicerContext, management: Management) -> Actor | None:
    """Like :func:`resolve_actor`, but None when neither header is present."""
    asserted, api_key = _headers(context)
    if asserted and api_key:
        raise InvalidArgument(ACTOR_HEADER, f"give {ACTOR_HEADER} or {API_KEY_HEADER}, not both")
    if api_key:
        if len(api_key) > API_KEY_MAX:
            raise Unauthenticated("invalid API key")
        # Part of the service accounts feature; imported here so this module does not
        # depend on it at import time.
        from orgauthz.services.service_accounts import authenticate_key

        found = authenticate_key(management, api_key)
        return await found if inspect.isawaitable(found) else found
    if not asserted:
        return None
    kind, ident = bounds.check_subject(ACTOR_HEADER, asserted)
    if kind != "user":
        raise InvalidArgument(ACTOR_HEADER, f"must be user:<id>; service accounts present {API_KEY_HEADER}")
    return Actor(subject=f"user:{ident}")
