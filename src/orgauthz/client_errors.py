"""The typed errors of :mod:`orgauthz.client`, one class per status code the server answers.

Every class derives from :class:`OrgAuthzClientError`, which derives from ``grpc.RpcError``
and keeps its ``code()`` and ``details()``: code that caught ``grpc.RpcError`` from the client
keeps working. :func:`error_from` turns the ``grpc.RpcError`` of a call into the matching
class; a status without a class of its own becomes the base class.
"""

from __future__ import annotations

import re
from typing import ClassVar

import grpc

# A message that starts with a request field ("emails[2]: must be an email address ...",
# "org_role: service accounts never hold the Admin role") names that field: the server's
# InvalidArgument is built as ``f"{field}: {problem}"`` (orgauthz.errors).
_FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z_][a-z0-9_]*(?:\[\d+\])?)*): ")


class OrgAuthzClientError(grpc.RpcError):  # type: ignore[misc]  # grpc ships no stubs
    """A call the server answered with a status other than OK.

    ``code()`` and ``details()`` are those of ``grpc.RpcError``; ``method`` is the full RPC
    name (``/orgauthz.v1.WorkspaceService/CreateWorkspace``, empty when unknown); ``field`` is
    the request field the message starts with (``emails[2]``), empty when it names none."""

    status: ClassVar[grpc.StatusCode | None] = None

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        method: str = "",
        trailing_metadata: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self._code = code
        self._message = message
        self._trailing = trailing_metadata
        self.method = method
        found = _FIELD.match(message)
        self.field = found[1] if found else ""

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing


class InvalidArgument(OrgAuthzClientError):
    """A request field is outside its bound; ``field`` names it."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(OrgAuthzClientError):
    """The resource does not exist, or is not visible to the actor."""

    status = grpc.StatusCode.NOT_FOUND


class AlreadyExists(OrgAuthzClientError):
    status = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(OrgAuthzClientError):
    status = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(OrgAuthzClientError):
    """No or wrong caller credentials, or an API key that is invalid, expired or revoked."""

    status = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(OrgAuthzClientError):
    """The state forbids the call (an accepted invitation, the last Owner, an invalid policy)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(OrgAuthzClientError):
    """A write lost a race: a stale ``expected_revision`` (read again and retry)."""

    status = grpc.StatusCode.ABORTED


Conflict = Aborted


class ResourceExhausted(OrgAuthzClientError):
    """A limit is reached (members, service accounts, workspaces, ACL entries, ...)."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(OrgAuthzClientError):
    """The server cannot answer now (unreachable, or a revision it has not reached yet)."""

    status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(OrgAuthzClientError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(OrgAuthzClientError):
    status = grpc.StatusCode.INTERNAL


ERRORS: dict[grpc.StatusCode, type[OrgAuthzClientError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        FailedPrecondition,
        Aborted,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
    if cls.status is not None
}


def error_from(exc: grpc.RpcError, method: str = "") -> OrgAuthzClientError:
    """The typed error for the failed call ``exc`` (a ``grpc.Call`` as grpc raises it)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    message = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    trailing = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else ()
    cls = ERRORS.get(code, OrgAuthzClientError)
    return cls(code, message or "", method=method, trailing_metadata=tuple(trailing or ()))
