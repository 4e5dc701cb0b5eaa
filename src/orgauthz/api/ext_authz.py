"""Envoy's external authorization servicer (``envoy.service.auth.v3.Authorization/Check``).

Served beside ``AuthorizationService`` when ``ext_authz`` is on (docs/envoy.md).

The servicer only translates: Envoy's ``CheckRequest`` to method, path and headers, the
:class:`~orgauthz.services.http_gate.HttpGate` verdict back to a ``CheckResponse``. Allowed:
status OK and ``x-orgauthz-subject: <subject>`` for the upstream (overwriting any the
client sent). Refused: the status code matching the HTTP status (UNAUTHENTICATED 401,
PERMISSION_DENIED 403, INVALID_ARGUMENT 400, UNAVAILABLE 503) and a denied response with
that HTTP status, ``x-orgauthz-reason`` and the reason as its body. Every verdict is an
answer, so Envoy never falls back to ``failure_mode_allow``; a caller that does not
authenticate is refused by the interceptors before this runs (UNAUTHENTICATED), which
Envoy turns into a 403 as long as ``failure_mode_allow`` stays false.

Needs the ``envoy`` extra (``xds-protos``): imported only when the setting is on.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Final

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import status_pb2

from orgauthz.api.metrics import Metrics
from orgauthz.services.http_gate import REASON_HEADER, SUBJECT_UPSTREAM, HttpGate, Verdict

SERVICE_NAME: Final = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
_CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_OVERWRITE: Final = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def headers_of(http: Any) -> dict[str, str]:
    """The request's headers by lower-case name. Envoy sends ``headers`` (repeated headers
    joined with ","), or ``header_map`` with ``encode_raw_headers``: joined the same way."""
    if http.headers:
        return {k.lower(): v for k, v in http.headers.items()}
    found: dict[str, str] = {}
    for h in http.header_map.headers:
        value = h.value or h.raw_value.decode("utf-8", "replace")
        name = h.key.lower()
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def response(verdict: Verdict) -> external_auth_pb2.CheckResponse:
    if verdict.allowed:
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=grpc.StatusCode.OK.value[0]),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=[
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=SUBJECT_UPSTREAM, value=verdict.subject),
                        append_action=_OVERWRITE,
                    )
                ]
            ),
        )
    code = _CODES.get(verdict.http_status, grpc.StatusCode.PERMISSION_DENIED)
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code.value[0], message=verdict.reason),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=verdict.http_status),
            headers=[
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=REASON_HEADER, value=verdict.reason), append_action=_OVERWRITE
                )
            ],
            body=f"{verdict.reason}\n",
        ),
    )


class ExtAuthzServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]  # untyped stubs
    def __init__(self, gate: HttpGate, metrics: Metrics) -> None:
        self.gate = gate
        self.metrics = metrics

    async def Check(  # the RPC's name
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        start = perf_counter()
        http = request.attributes.request.http
        verdict = await self.gate.decide(http.method, http.path, headers_of(http))
        self.metrics.observe("ext_authz.Check", perf_counter() - start)
        self.metrics.verdict("allowed" if verdict.allowed else verdict.reason)
        return response(verdict)


def add_to_server(gate: HttpGate, metrics: Metrics, server: Any) -> None:
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(ExtAuthzServicer(gate, metrics), server)
