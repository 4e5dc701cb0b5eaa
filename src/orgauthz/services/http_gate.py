"""An HTTP request's verdict, for Envoy's external authorization (docs/envoy.md).

:meth:`HttpGate.decide` takes what the proxy saw (method, path, headers with lower-case
names) and returns a :class:`Verdict`; it never raises. In order:

1. **Subject.** ``authorization: Bearer pnb_...`` / ``pnu_...`` is resolved as
   ``Authenticate`` resolves it (the same :class:`KeyAuthenticator` and cache); an
   ``authorization`` header holding anything else (a JWT the proxy checked...) is not a key
   and is ignored. The ``subject_header`` the proxy sets (``user:<id>``) is read only when
   ``trust_subject_header`` (the server authenticates its callers: shared secret or mTLS,
   never insecure development mode). Neither: 401 ``unauthenticated`` (also for an unknown,
   expired or revoked key). Both: 400.
2. **Route.** The :class:`~orgauthz.domain.routes.RouteTable` match; none: 403
   ``no route`` (the documented default, :data:`~orgauthz.domain.routes.UNMATCHED`).
3. **Decision.** ``Decisions.check`` on the route's workspace, scope and object. A deny is
   403 ``denied``, the same whether the workspace or object exists or not.

A malformed request (a path with ``..`` or empty segments, an id a route variable cannot
hold, a malformed subject header) is 400 ``bad request``; anything the sidecar cannot answer
(a replica that cannot catch up, a store error, any other exception, logged) is 503
``unavailable``: never an allow (fail closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from orgauthz.domain import bounds
from orgauthz.domain.routes import RouteTable
from orgauthz.engine.decisions import Decisions, Question
from orgauthz.errors import InvalidArgument, Unauthenticated
from orgauthz.services import secrets as sec
from orgauthz.services.api_keys import KeyAuthenticator

log = logging.getLogger(__name__)

SUBJECT_UPSTREAM: Final = "x-orgauthz-subject"  # set on an allowed request for the upstream
REASON_HEADER: Final = "x-orgauthz-reason"  # set on a refused one, for the client


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    http_status: int  # 200 when allowed
    reason: str  # "" when allowed; otherwise one of the short texts above
    subject: str = ""  # who asked, when known


UNAUTHENTICATED: Final = Verdict(False, 401, "unauthenticated")
NO_ROUTE: Final = Verdict(False, 403, "no route")
DENIED: Final = Verdict(False, 403, "denied")
BAD_REQUEST: Final = Verdict(False, 400, "bad request")
UNAVAILABLE: Final = Verdict(False, 503, "unavailable")


def bearer_key(authorization: str) -> str:
    """The API key of an ``authorization: Bearer pnb_...``/``pnu_...`` header; "" otherwise."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or sec.key_prefix(token) is None:
        return ""
    return token


class HttpGate:
    def __init__(
        self,
        routes: RouteTable,
        decisions: Decisions,
        keys: KeyAuthenticator,
        *,
        subject_header: str = "",
        trust_subject_header: bool = False,
    ) -> None:
        self.routes = routes
        self.decisions = decisions
        self.keys = keys
        self.subject_header = subject_header.lower() if trust_subject_header else ""

    async def decide(self, method: str, path: str, headers: dict[str, str]) -> Verdict:
        """The verdict on one request; never raises (see the module docstring)."""
        try:
            return await self._decide(method, path, headers)
        except InvalidArgument:
            return BAD_REQUEST
        except Unauthenticated:
            return UNAUTHENTICATED
        except Exception:  # fail closed: whatever went wrong is never an allow
            log.exception("ext_authz: cannot decide %s %s", method, path.split("?", 1)[0][:200])
            return UNAVAILABLE

    async def _decide(self, method: str, path: str, headers: dict[str, str]) -> Verdict:
        if not method or not path:
            return BAD_REQUEST
        key = bearer_key(headers.get("authorization", ""))
        asserted = headers.get(self.subject_header, "") if self.subject_header else ""
        if key and asserted:
            return BAD_REQUEST
        if asserted:
            bounds.check_subject(self.subject_header, asserted)
            subject = asserted
        elif key:
            subject = (await self.keys.authenticate(key)).subject
        else:
            return UNAUTHENTICATED
        match = self.routes.match(method, path)
        if match is None:
            return Verdict(False, NO_ROUTE.http_status, NO_ROUTE.reason, subject)
        decision = await self.decisions.check(Question(subject, match.workspace, "", match.scope, obj=match.obj))
        if not decision.allowed:
            return Verdict(False, DENIED.http_status, DENIED.reason, subject)
        return Verdict(True, 200, "", subject)
