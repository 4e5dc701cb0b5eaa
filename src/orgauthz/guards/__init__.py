"""Guards for Python services that ask the sidecar before they act.

- :mod:`orgauthz.guards.fastapi`: a FastAPI/Starlette dependency,
  ``Depends(guard.require_scope("run_deployments", workspace="{ws}", object="deployment:{id}"))``
  (needs the ``orgauthz[fastapi]`` extra);
- :mod:`orgauthz.guards.grpc`: a ``grpc.aio`` server interceptor guarding a service's own RPCs
  by a method -> :class:`~orgauthz.guards.grpc.Rule` table (needs nothing beyond orgauthz).

Both read the subject as :class:`FromHeader` or :class:`FromApiKey` says, fail closed when the
sidecar cannot answer in time, and count every outcome in :class:`GuardCounts`. This package
imports neither FastAPI nor Starlette.
"""

from orgauthz.guards.core import FromApiKey, FromHeader, GuardCounts, SubjectSource

__all__ = ["FromApiKey", "FromHeader", "GuardCounts", "SubjectSource"]
