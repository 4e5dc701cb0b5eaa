"""Organizations through gRPC: renaming (R1) and the actor's own organizations (me/organizations)."""

from __future__ import annotations

import grpc
from google.protobuf.json_format import MessageToDict

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as pb
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.management.support import As, add_member, code, create_org, error, head

C = grpc.StatusCode


async def test_r1_an_admin_renames_the_organization_and_gets_the_revision(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    before = head(app)
    r = await alice.orgs.UpdateOrganization(pb.UpdateOrganizationRequest(organization="acme", name="  Acme Corp  "))
    assert r.revision == head(app) > before
    assert (r.organization.id, r.organization.handle, r.organization.name) == ("acme", "acme", "Acme Corp")
    assert r.organization.revision == r.revision
    got = await alice.orgs.GetOrganization(pb.GetOrganizationRequest(organization="acme"))
    assert got.organization.name == "Acme Corp"
    assert got.organization.limits == r.organization.limits


async def test_renaming_is_audited_with_the_name_before_and_after(app: App, channel) -> None:
    await create_org(channel)
    alice = As.of(channel, "user:alice")
    r = await alice.orgs.UpdateOrganization(pb.UpdateOrganizationRequest(organization="acme", name="Acme Corp"))
    events = await alice.audit.ListAuditEvents(
        pb.ListAuditEventsRequest(organization="acme", event="orgauthz.organization.updated")
    )
    [event] = events.events
    assert (event.actor, event.target, event.revision) == ("user:alice", "organization:acme", r.revision)
    assert MessageToDict(event.details) == {"from": {"name": "Acme"}, "to": {"name": "Acme Corp"}}


async def test_renaming_needs_update_account(app: App, channel) -> None:
    await create_org(channel)
    await add_member(app, "acme", "bob")
    bob = As.of(channel, "user:bob")
    before = head(app)
    denied = await error(bob.orgs.UpdateOrganization(pb.UpdateOrganizationRequest(organization="acme", name="Mine")))
    assert denied.code() == C.PERMISSION_DENIED
    assert "update:account" in (denied.details() or "")
    assert head(app) == before


async def test_another_organization_is_not_found(app: App, channel) -> None:
    await create_org(channel)
    await create_org(channel, "globex", "gina")
    gina = As.of(channel, "user:gina")
    for org in ("acme", "nope"):
        req = pb.UpdateOrganizationRequest(organization=org, name="Taken over")
        assert await code(gina.orgs.UpdateOrganization(req)) == C.NOT_FOUND


async def test_list_my_organizations_with_my_role_in_each_paged(app: App, channel) -> None:
    for org in ("acme", "globex", "initech"):
        await create_org(channel, org, f"{org}-admin")
    await add_member(app, "acme", "bob")
    await add_member(app, "initech", "bob", role="Admin")
    await add_member(app, "globex", "bob")
    bob = As.of(channel, "user:bob")
    seen, token = [], ""
    while True:
        r = await bob.orgs.ListMyOrganizations(pb.ListMyOrganizationsRequest(page_size=2, page_token=token))
        assert len(r.organizations) <= 2
        seen += [(m.organization.id, m.organization.name, m.role) for m in r.organizations]
        token = r.next_page_token
        if not token:
            break
    assert seen == [("acme", "Acme", "Member"), ("globex", "Globex", "Member"), ("initech", "Initech", "Admin")]
    # Someone who belongs nowhere gets an empty list, not an error.
    nobody = await As.of(channel, "user:nobody").orgs.ListMyOrganizations(pb.ListMyOrganizationsRequest())
    assert (list(nobody.organizations), nobody.next_page_token) == ([], "")
    # Leaving (or being removed) takes the organization off the list at once.
    await bob.members.RemoveMember(pb.RemoveMemberRequest(organization="globex", user_id="bob"))
    r = await bob.orgs.ListMyOrganizations(pb.ListMyOrganizationsRequest())
    assert [m.organization.id for m in r.organizations] == ["acme", "initech"]


async def test_a_service_account_lists_its_own_organization(app: App, channel) -> None:
    await create_org(channel)
    sas = spbg.ServiceAccountServiceStub(channel)
    created = await sas.CreateServiceAccount(
        spb.CreateServiceAccountRequest(organization="acme", id="robot", name="Robot"),
        metadata=(("x-orgauthz-actor", "user:alice"),),
    )
    robot = As.of(channel, api_key=created.api_key)
    r = await robot.orgs.ListMyOrganizations(pb.ListMyOrganizationsRequest())
    assert [(m.organization.id, m.role) for m in r.organizations] == [("acme", "Member")]


async def test_list_my_organizations_needs_an_actor(app: App, channel) -> None:
    e = await error(As.of(channel).orgs.ListMyOrganizations(pb.ListMyOrganizationsRequest()))
    assert e.code() == C.UNAUTHENTICATED
