"""``grpc.health.v1.Health``: Check, Watch and List over one table of statuses.

gRPC's asyncio :class:`~grpc_health.v1._async.HealthServicer` (grpcio-health-checking
1.85) answers ``Check`` and ``Watch`` but leaves ``List`` UNIMPLEMENTED. :class:`Health`
adds it: every service name the server reports, with the status ``Check`` gives for it
(docs/operations.md lists the names and what each status means).
"""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer


class Health(HealthServicer):  # type: ignore[misc]  # grpc_health has no type information
    async def List(self, request: health_pb2.HealthListRequest, context: Any) -> health_pb2.HealthListResponse:
        """A snapshot of every reported name's status (a handful: no RESOURCE_EXHAUSTED).

        The statuses are the base class's own table, the one Check and Watch read."""
        statuses = dict(self._server_status)  # copied: no await below, but set() may run between calls
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=status) for name, status in statuses.items()}
        )
