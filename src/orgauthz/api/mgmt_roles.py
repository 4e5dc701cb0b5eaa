"""``orgauthz.v1.RoleService``: thin translation around :mod:`orgauthz.services.roles`."""

from __future__ import annotations

from typing import Any

import grpc

from orgauthz.api.auth import resolve_actor
from orgauthz.api.errors import rpc
from orgauthz.api.mgmt_organizations import timestamp
from orgauthz.api.registry import register
from orgauthz.domain import bounds
from orgauthz.errors import InvalidArgument
from orgauthz.services import roles as svc
from orgauthz.services.context import Management
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import management_pb2_grpc as pb_grpc


def role(r: svc.RoleView) -> pb.Role:
    return pb.Role(
        id=r.id,
        name=r.name,
        level=r.level,
        description=r.description,
        builtin=r.builtin,
        inherits=r.inherits,
        scopes=r.scopes,
        effective_scopes=r.effective_scopes,
        create_time=timestamp(r.created_at),
        update_time=timestamp(r.updated_at),
    )


def _level(value: str, *, required: bool) -> str:
    if (value or required) and value not in svc.LEVELS:
        raise InvalidArgument("level", "must be workspace or organization" + ("" if required else " or empty"))
    return value


def _scopes(values: Any) -> list[str]:
    bounds.check_count("scopes", len(values), bounds.SCOPES_PER_ROLE_MAX, minimum=0)
    return [bounds.check_scope_name(f"scopes[{i}]", s) for i, s in enumerate(values)]


def _page(request: Any) -> dict[str, Any]:
    return {
        "page_size": bounds.check_page_size("page_size", request.page_size),
        "after": bounds.decode_page_token("page_token", request.page_token),
    }


def _token(after: str) -> str:
    return bounds.encode_page_token(after) if after else ""


class RoleServicer(pb_grpc.RoleServiceServicer):  # type: ignore[misc]  # generated
    def __init__(self, management: Management) -> None:
        self.m = management

    @rpc
    async def ListRoles(self, request: pb.ListRolesRequest, context: grpc.aio.ServicerContext) -> pb.ListRolesResponse:
        actor = await resolve_actor(context, self.m)
        rows, after = await svc.list_roles(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            level=_level(request.level, required=False),
            **_page(request),
        )
        return pb.ListRolesResponse(roles=[role(r) for r in rows], next_page_token=_token(after))

    @rpc
    async def CreateRole(
        self, request: pb.CreateRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateRoleResponse:
        actor = await resolve_actor(context, self.m)
        r, rev = await svc.create_role(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            role_id=bounds.check_optional_id("id", request.id),
            name=bounds.check_name("name", request.name),
            level=_level(request.level, required=True),
            inherits=bounds.check_optional_id("inherits", request.inherits),
            scopes=_scopes(request.scopes),
            description=bounds.check_description("description", request.description),
        )
        return pb.CreateRoleResponse(role=role(r), revision=rev)

    @rpc
    async def UpdateRole(
        self, request: pb.UpdateRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateRoleResponse:
        actor = await resolve_actor(context, self.m)
        r, rev = await svc.update_role(
            self.m,
            actor,
            bounds.check_id("organization", request.organization),
            bounds.check_id("role", request.role),
            name=bounds.check_name("name", request.name),
            scopes=_scopes(request.scopes),
            description=bounds.check_description("description", request.description),
        )
        return pb.UpdateRoleResponse(role=role(r), revision=rev)

    @rpc
    async def DeleteRole(
        self, request: pb.DeleteRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteRoleResponse:
        actor = await resolve_actor(context, self.m)
        rev = await svc.delete_role(
            self.m, actor, bounds.check_id("organization", request.organization), bounds.check_id("role", request.role)
        )
        return pb.DeleteRoleResponse(revision=rev)

    @rpc
    async def ListScopes(
        self, request: pb.ListScopeCatalogRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListScopeCatalogResponse:
        rows, after = svc.list_scope_catalog(
            self.m.policy, level=_level(request.level, required=False), **_page(request)
        )
        return pb.ListScopeCatalogResponse(
            scopes=[
                pb.ScopeInfo(name=s.name, level=s.level, description=s.description, includes=s.includes) for s in rows
            ],
            next_page_token=_token(after),
        )


@register(pb.DESCRIPTOR.services_by_name["RoleService"].full_name)
def _register(app: Any, server: grpc.aio.Server, management: Management) -> None:
    pb_grpc.add_RoleServiceServicer_to_server(RoleServicer(management), server)
