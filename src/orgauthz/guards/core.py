"""What both guards share: the subject's source, one decision within a deadline, the counts.

A guard fails closed: anything but the sidecar's "allowed" keeps the guarded code from
running. It tells four outcomes apart, because the caller must answer them differently
(:class:`Verdict`): allowed; denied (the sidecar said no, or refused the request's values as
invalid); unauthenticated (no subject could be read from the request); unavailable (the
sidecar is down, erring or too slow; counted and logged).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import string
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from orgauthz.client import AsyncClient
from orgauthz.domain import bounds
from orgauthz.errors import InvalidArgument
from orgauthz.v1 import authorization_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_SUBJECT_HEADER = "x-orgauthz-subject"
API_KEY_PREFIXES = ("pnb_", "pnu_")
API_KEY_MAX = 256  # as the server's own bound (orgauthz.api.auth.API_KEY_MAX)
INVALID_KEY = "invalid API key"  # the server's one message for every key it refuses


@dataclass(frozen=True)
class FromHeader:
    """The subject (``user:<id>`` or ``service_account:<id>``) as the HTTP header or gRPC
    metadata key ``name`` holds it. Use it only behind an authenticated proxy that sets the
    header and drops any copy the client sent: whoever can set it is whoever they say. Given
    more than once, it is refused."""

    name: str = DEFAULT_SUBJECT_HEADER


@dataclass(frozen=True)
class FromApiKey:
    """``Authorization: Bearer pnb_...`` (a service account's key) or ``pnu_...`` (a user's
    key), resolved by the sidecar's ``Authenticate``: one more call per request, answered from
    the sidecar's memory once the key is warm."""

    header: str = "authorization"


SubjectSource = FromHeader | FromApiKey


@dataclass
class GuardCounts:
    """What a guard decided since it was made. ``unavailable`` counts the sidecar being down or
    answering with an error, ``timeouts`` the sidecar not answering within the guard's timeout;
    both failed closed."""

    allowed: int = 0
    denied: int = 0
    unauthenticated: int = 0
    unavailable: int = 0
    timeouts: int = 0

    @property
    def failed_closed(self) -> int:
        return self.unavailable + self.timeouts


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    subject: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Ask:
    """One decision: ``scope`` in ``workspace`` (optionally on ``obj``, R26) or ``organization``."""

    scope: str
    workspace: str = ""
    organization: str = ""
    obj: str = ""


# -- the values of a rule: a constant, a template of the request's fields, or a function ----

Value = str | Callable[[Any], str | Awaitable[str]] | None


class Part:
    """One of ``workspace``, ``organization`` or ``object`` of a rule.

    A string is a template: ``"{ws}"`` and ``"deployment:{id}"`` take the named fields from the
    request (a FastAPI route's path parameters, a gRPC request message's fields); one without
    ``{...}`` is a constant. A callable is given the request (a Starlette ``Request``, a
    protobuf message) and returns the value, or an awaitable of it. Raises ValueError at
    construction for a template whose fields are not plain names.
    """

    def __init__(self, what: str, value: Value) -> None:
        self.what = what
        self.value = value
        self.fields: tuple[str, ...] = ()
        if isinstance(value, str):
            names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
            bad = [name for name in names if not name.isidentifier()]
            if bad:
                raise ValueError(f"{what}: {value!r}: fields must be plain names, got {bad}")
            self.fields = tuple(names)

    @property
    def given(self) -> bool:
        return self.value is not None

    async def render(self, request: Any, field: Callable[[str], object]) -> str:
        """The value for this request. ``field(name)`` reads a template's field; it raises
        LookupError for a field the request does not have, a mistake in the rule."""
        if self.value is None:
            return ""
        if isinstance(self.value, str):
            return self.value.format_map({name: field(name) for name in self.fields})
        got = self.value(request)
        return str(await got) if inspect.isawaitable(got) else str(got)


def check_rule(scope: str, workspace: Value, organization: Value, obj: Value) -> tuple[Part, Part, Part]:
    """The parts of a rule; ValueError unless exactly one of workspace and organization is
    given, and an object only with a workspace."""
    if not scope:
        raise ValueError("scope: required")
    if (workspace is None) == (organization is None):
        raise ValueError("give exactly one of workspace and organization")
    if obj is not None and workspace is None:
        raise ValueError("object: an object is named inside a workspace")
    return Part("workspace", workspace), Part("organization", organization), Part("object", obj)


# -- asking the sidecar -----------------------------------------------------------------------


class Sidecar:
    """Decides for a guard: reads the subject, asks the sidecar within ``timeout`` seconds,
    counts the outcome in :attr:`counts`.

    One :class:`~orgauthz.client.AsyncClient` per event loop (a ``grpc.aio`` channel belongs
    to the loop it was opened in; a test client may run the app in a loop of its own).
    """

    def __init__(
        self,
        target: str,
        *,
        subject: SubjectSource,
        timeout: float,
        token: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout: must be positive")
        self.target = target
        self.subject = subject
        self.timeout = timeout
        self.counts = GuardCounts()
        self._options: dict[str, Any] = {"token": token, "credentials": credentials, "server_name": server_name}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = weakref.WeakKeyDictionary()

    def _client(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncClient(self.target, timeout=self.timeout, **self._options)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Closes the channel of the running loop, if one was opened."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def decide(self, headers: Callable[[str], Sequence[str]], ask: Callable[[], Awaitable[Ask]]) -> Outcome:
        """The outcome for a request whose headers (or metadata) ``headers(name)`` lists; the
        decision itself is ``await ask()``, made only once a subject was read."""
        outcome = await self._decide(headers, ask)
        if outcome.verdict is Verdict.ALLOW:
            self.counts.allowed += 1
        elif outcome.verdict is Verdict.DENY:
            self.counts.denied += 1
        elif outcome.verdict is Verdict.UNAUTHENTICATED:
            self.counts.unauthenticated += 1
        return outcome

    async def _decide(self, headers: Callable[[str], Sequence[str]], ask: Callable[[], Awaitable[Ask]]) -> Outcome:
        deadline = asyncio.get_running_loop().time() + self.timeout
        client = self._client()
        try:
            if isinstance(self.subject, FromHeader):
                subject = self._asserted(headers(self.subject.name))
            else:
                key = self._api_key(headers(self.subject.header))
                if isinstance(key, Outcome):
                    return key
                subject = await self._authenticate(client, key, deadline)
            if isinstance(subject, Outcome):
                return subject
            wanted = await ask()
            return await self._check(client, subject, wanted, deadline)
        except grpc.aio.AioRpcError as exc:
            return self._failed(exc)

    def _asserted(self, values: Sequence[str]) -> str | Outcome:
        name = self.subject.name if isinstance(self.subject, FromHeader) else ""
        if len(values) != 1:
            why = f"missing {name}" if not values else f"{name} given more than once"
            return Outcome(Verdict.UNAUTHENTICATED, reason=why)
        try:
            bounds.check_subject(name, values[0])
        except InvalidArgument:
            return Outcome(Verdict.UNAUTHENTICATED, reason=f"{name} must be user:<id> or service_account:<id>")
        return values[0]

    @staticmethod
    def _api_key(values: Sequence[str]) -> str | Outcome:
        refused = Outcome(Verdict.UNAUTHENTICATED, reason="an API key is required: Bearer pnb_... or pnu_...")
        if len(values) != 1:
            return refused
        scheme, _, key = values[0].partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key.startswith(API_KEY_PREFIXES) or len(key) > API_KEY_MAX:
            return refused
        return key

    @staticmethod
    def _left(deadline: float) -> float:
        return max(deadline - asyncio.get_running_loop().time(), 0.001)

    async def _authenticate(self, client: AsyncClient, key: str, deadline: float) -> str | Outcome:
        try:
            found = await client.authorization.Authenticate(
                pb.AuthenticateRequest(api_key=key), timeout=self._left(deadline), metadata=client.metadata
            )
        except grpc.aio.AioRpcError as exc:
            # The server's one refusal of a key; any other UNAUTHENTICATED is this guard's own
            # caller credentials being refused, an outage of the guard, not the request's fault.
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED and exc.details() == INVALID_KEY:
                return Outcome(Verdict.UNAUTHENTICATED, reason=INVALID_KEY)
            raise
        return str(found.subject)

    async def _check(self, client: AsyncClient, subject: str, ask: Ask, deadline: float) -> Outcome:
        request = pb.CheckRequest(subject=subject, scope=ask.scope, object=ask.obj)
        if ask.organization:
            request.organization = ask.organization
        else:
            request.workspace = ask.workspace
        denied = Outcome(Verdict.DENY, subject=subject, reason=f"not allowed: {ask.scope}")
        try:
            answer = await client.authorization.Check(request, timeout=self._left(deadline), metadata=client.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return denied  # a value from the request no workspace or object can have
            raise
        return Outcome(Verdict.ALLOW, subject=subject) if answer.allowed else denied

    def _failed(self, exc: grpc.aio.AioRpcError) -> Outcome:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.counts.timeouts += 1
            log.warning("orgauthz at %s did not answer within %ss: failing closed", self.target, self.timeout)
        else:
            self.counts.unavailable += 1
            log.warning("orgauthz at %s failed (%s: %s): failing closed", self.target, code.name, exc.details())
        return Outcome(Verdict.UNAVAILABLE, reason="authorization is unavailable")
