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
``x-orgauthz-api-key: pnb_...`` for a service account presenting its own key (``pnu_...``: a
user presenting one of their personal keys, acting as that user, R29). A missing
actor is UNAUTHENTICATED; a malformed one, or both headers at once, INVALID_ARGUMENT
naming the header.

**Each identity header at most once** (:data:`IDENTITY_HEADERS`): a call that gives one of
them twice, whatever the copies hold, is INVALID_ARGUMENT naming it on every method, health
included, before the caller is checked or a servicer runs. A proxy that appends the header it
trusts behind one the client sent must never be read as "first" or "last one wins".
``-bin`` variants are other names: never read as a credential or an actor.

**Metadata size** (:data:`METADATA_MAX_BYTES`): the server accepts 32 KiB of metadata per
call, so an over-long key or token reaches the checks above and is UNAUTHENTICATED as
documented; above it gRPC answers RESOURCE_EXHAUSTED before anything is read.
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
IDENTITY_HEADERS = frozenset({AUTHORIZATION, ACTOR_HEADER, API_KEY_HEADER})
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)

METADATA_MAX_BYTES = 32 * 1024
"""All of one call's metadata, as HTTP/2 counts it (each entry's name and value plus 32 bytes).

gRPC's own default is a soft 8 KiB and a hard 16 KiB, between which it refuses calls at random
with RESOURCE_EXHAUSTED, so a 10,000-character API key would be refused by gRPC some of the time instead
of being UNAUTHENTICATED. One value for both limits makes the outcome depend on the size alone;
32 KiB carries any key or token a caller plausibly sends to the check that refuses it, and still
bounds what one call makes the server hold.
"""


def server_options() -> list[tuple[str, int]]:
    """The gRPC server options that set :data:`METADATA_MAX_BYTES` as both its soft and hard limit."""
    return [
        ("grpc.max_metadata_size", METADATA_MAX_BYTES),
        ("grpc.absolute_max_metadata_size", METADATA_MAX_BYTES),
    ]


def _scan(metadata: Sequence[tuple[str, Any]] | None) -> tuple[str, Any]:
    """(the first identity header given more than once, or ""; the ``authorization`` value, or None)."""
    seen: set[str] = set()
    authorization = None
    for key, value in metadata or ():
        if key in IDENTITY_HEADERS:
            if key in seen:
                return key, None
            seen.add(key)
            if key == AUTHORIZATION:
                authorization = value
    return "", authorization


def _repeated(header: str) -> InvalidArgument:
    return InvalidArgument(header, "given more than once; send it once")


def _refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers ``code`` with ``message``."""

    async def unary(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
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


class IdentityHeadersInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Refuses a call that gives an identity header more than once: INVALID_ARGUMENT naming it.

    Installed on every server, also where nobody's credentials are read (mTLS alone, insecure
    development mode), so the same metadata gets the same answer whatever the configuration.
    """

    def refusal(self, method: str, metadata: Sequence[tuple[str, Any]] | None) -> tuple[grpc.StatusCode, str] | None:
        """The status and message to refuse the call with, or None to let it through."""
        repeated, _ = _scan(metadata)
        return (grpc.StatusCode.INVALID_ARGUMENT, str(_repeated(repeated))) if repeated else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        refusal = self.refusal(handler_call_details.method, handler_call_details.invocation_metadata)
        return handler if refusal is None else _refusing_handler(handler, *refusal)


class CallerAuthInterceptor(IdentityHeadersInterceptor):
    """Also requires ``authorization: Bearer <token>``; with ``token=None`` refuses every call.

    The expected header is computed once; each call costs one scan of its metadata (repeated
    headers and the token together) and one constant-time comparison.
    """

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None
        self._message = (
            "missing or wrong caller credentials" if token else "no caller authentication is configured on this server"
        )

    def refusal(self, method: str, metadata: Sequence[tuple[str, Any]] | None) -> tuple[grpc.StatusCode, str] | None:
        repeated, given = _scan(metadata)
        if repeated:
            return grpc.StatusCode.INVALID_ARGUMENT, str(_repeated(repeated))
        if self._expected is not None and given is not None:
            value = given.encode() if isinstance(given, str) else bytes(given)
            if hmac.compare_digest(value, self._expected):
                return None
        if method.startswith(OPEN_PREFIXES):
            return None
        return grpc.StatusCode.UNAUTHENTICATED, self._message


def interceptors_for(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors :class:`~orgauthz.api.server.App` installs; logs how callers are checked."""
    if settings.insecure_dev:
        log.warning(
            "INSECURE DEVELOPMENT MODE: callers are NOT authenticated; anyone who can reach "
            "this port may assert any actor. Never run like this in production."
        )
        return [IdentityHeadersInterceptor()]
    mtls = bool(settings.tls_cert and settings.tls_client_ca)
    if settings.auth_token:
        log.info("callers authenticate with the shared secret%s", " and a client certificate" if mtls else "")
        return [CallerAuthInterceptor(settings.auth_token)]
    if mtls:
        log.info("callers authenticate with client certificates (mTLS)")
        return [IdentityHeadersInterceptor()]
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
    """(actor, API key), each "" when absent. InvalidArgument when either is given twice (the
    interceptors refuse that first; this keeps the rule where the headers are read)."""
    actor = key = None
    for name, value in context.invocation_metadata() or ():
        if name == ACTOR_HEADER:
            if actor is not None:
                raise _repeated(name)
            actor = value if isinstance(value, str) else ""
        elif name == API_KEY_HEADER:
            if key is not None:
                raise _repeated(name)
            key = value if isinstance(value, str) else ""
    return actor or "", key or ""


async def resolve_actor(context: grpc.aio.ServicerContext, management: Management) -> Actor:
    """The actor of a management call.

    Raises Unauthenticated when no actor is given or the API key is unknown, expired,
    revoked or longer than :data:`API_KEY_MAX`; InvalidArgument (naming the header) when the
    header is malformed, names a service account without its key, is given more than once,
    or both headers are given.
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
        # Part of the API keys feature; imported here so this module does not depend on it
        # at import time.
        from orgauthz.services.api_keys import authenticate_key

        found = authenticate_key(management, api_key)
        return await found if inspect.isawaitable(found) else found
    if not asserted:
        return None
    kind, ident = bounds.check_subject(ACTOR_HEADER, asserted)
    if kind != "user":
        raise InvalidArgument(ACTOR_HEADER, f"must be user:<id>; service accounts present {API_KEY_HEADER}")
    return Actor(subject=f"user:{ident}")
