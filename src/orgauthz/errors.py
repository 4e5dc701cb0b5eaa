"""Typed errors raised by the domain, store and engine.

Each maps to exactly one gRPC status code in :mod:`orgauthz.api.errors`; nothing
else in the code base decides a status code.
"""

from __future__ import annotations


class OrgAuthzError(Exception):
    """Base class. ``str(err)`` is safe to show to the caller."""


class InvalidArgument(OrgAuthzError):
    """A request field is outside its documented bound. Names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(OrgAuthzError):
    """The resource does not exist, or is not visible to the actor."""


class AlreadyExists(OrgAuthzError):
    """A resource with that id, handle or name already exists."""


class PermissionDenied(OrgAuthzError):
    """The actor may not perform the operation."""


class Unauthenticated(OrgAuthzError):
    """The caller or the API key could not be authenticated."""


class FailedPrecondition(OrgAuthzError):
    """The operation is not allowed in the current state (last Admin, role in use...)."""


class Conflict(OrgAuthzError):
    """The resource changed since the caller read it (an ACL's expected revision, R26)."""


class LimitExceeded(OrgAuthzError):
    """A plan limit would be exceeded (R10)."""


class InvitationUnusable(FailedPrecondition):
    """The invitation token is expired, revoked, rejected or already used (R6)."""


class Unavailable(OrgAuthzError):
    """A dependency (database) is unavailable; the call may be retried. Nothing was written."""


class StaleRevision(OrgAuthzError):
    """The replica has not reached the requested ``min_revision`` in time; retry."""


class PolicyError(OrgAuthzError):
    """The files in ``policies/`` are inconsistent. Carries file and line when known."""

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")
        self.file = file
        self.line = line
