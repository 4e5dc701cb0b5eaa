"""UpdateServiceAccount (R11): name and role change; never Owner or Admin; a changed role holds
in the next Check."""

from __future__ import annotations

import grpc
from google.protobuf.json_format import MessageToDict

from orgauthz.api.server import App
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import service_accounts_pb2 as pb
from orgauthz.v1 import service_accounts_pb2_grpc as pbg
from tests.management.support import As, add_member, allowed, create_org, error, head

C = grpc.StatusCode
ALICE = (("x-orgauthz-actor", "user:alice"),)


async def _acme(channel) -> pbg.ServiceAccountServiceStub:
    """acme with the service accounts robot and other, and the custom role auditor."""
    await create_org(channel)
    sas = pbg.ServiceAccountServiceStub(channel)
    for sa in ("robot", "other"):
        await sas.CreateServiceAccount(
            pb.CreateServiceAccountRequest(organization="acme", id=sa, name=sa.title()), metadata=ALICE
        )
    await As.of(channel, "user:alice").roles.CreateRole(
        mpb.CreateRoleRequest(
            organization="acme",
            id="auditor",
            name="Auditor",
            level="organization",
            inherits="Member",
            scopes=["read:audit_event"],
        )
    )
    return sas


def _update(org: str = "acme", sa: str = "robot", *, name: str = "", role: str = "") -> pb.UpdateServiceAccountRequest:
    return pb.UpdateServiceAccountRequest(organization=org, id=sa, name=name, org_role=role)


async def test_r11_name_and_role_change_and_a_check_reflects_the_role_at_once(app: App, channel) -> None:
    sas = await _acme(channel)
    subject = "service_account:robot"
    assert not await allowed(channel, subject, "read:audit_event", organization="acme")
    before = head(app)
    r = await sas.UpdateServiceAccount(_update(name="  Deploy bot ", role="auditor"), metadata=ALICE)
    assert r.revision == head(app) > before
    assert (r.service_account.id, r.service_account.name, r.service_account.org_role) == (
        "robot",
        "Deploy bot",
        "auditor",
    )
    assert len(r.service_account.keys) == 1  # masked, as every read shows them
    assert r.service_account.keys[0].masked.startswith("pnb_")
    # The next Check on this server reflects the new role, with no wait.
    assert await allowed(channel, subject, "read:audit_event", organization="acme")
    got = await sas.GetServiceAccount(pb.GetServiceAccountRequest(organization="acme", id="robot"), metadata=ALICE)
    assert got.service_account == r.service_account
    # Back to Member: the permission goes at once; an empty field keeps its value.
    r = await sas.UpdateServiceAccount(_update(role="Member"), metadata=ALICE)
    assert (r.service_account.name, r.service_account.org_role) == ("Deploy bot", "Member")
    assert not await allowed(channel, subject, "read:audit_event", organization="acme")
    assert await allowed(channel, subject, "read:account", organization="acme")


async def test_r11_never_owner_or_admin(app: App, channel) -> None:
    sas = await _acme(channel)
    before = head(app)
    for role in ("Admin", "Owner", "no-such-role", "Viewer"):
        e = await error(sas.UpdateServiceAccount(_update(role=role), metadata=ALICE))
        assert e.code() == C.INVALID_ARGUMENT, role
        assert (e.details() or "").startswith("org_role:"), (role, e.details())
    assert head(app) == before
    assert not await allowed(channel, "service_account:robot", "create:workspace", organization="acme")


async def test_a_name_taken_in_the_organization_is_already_exists_naming_name(app: App, channel) -> None:
    sas = await _acme(channel)
    before = head(app)
    e = await error(sas.UpdateServiceAccount(_update(name="Other"), metadata=ALICE))
    assert e.code() == C.ALREADY_EXISTS
    assert (e.details() or "").startswith("name:"), e.details()
    assert head(app) == before
    # Its own name is not taken.
    r = await sas.UpdateServiceAccount(_update(name="Robot"), metadata=ALICE)
    assert r.service_account.name == "Robot"


async def test_update_is_audited_with_before_and_after(app: App, channel) -> None:
    sas = await _acme(channel)
    r = await sas.UpdateServiceAccount(_update(name="Deployer", role="auditor"), metadata=ALICE)
    events = await As.of(channel, "user:alice").audit.ListAuditEvents(
        mpb.ListAuditEventsRequest(organization="acme", event="orgauthz.service-account.updated")
    )
    [event] = events.events
    assert (event.actor, event.target, event.revision) == ("user:alice", "service_account:robot", r.revision)
    assert MessageToDict(event.details) == {
        "from": {"name": "Robot", "org_role": "Member"},
        "to": {"name": "Deployer", "org_role": "auditor"},
    }


async def test_update_needs_update_bot(app: App, channel) -> None:
    sas = await _acme(channel)
    await add_member(app, "acme", "bob")
    before = head(app)
    e = await error(sas.UpdateServiceAccount(_update(name="Mine"), metadata=(("x-orgauthz-actor", "user:bob"),)))
    assert e.code() == C.PERMISSION_DENIED
    assert "update:bot" in (e.details() or "")
    assert head(app) == before


async def test_another_organizations_or_a_missing_service_account_is_not_found(app: App, channel) -> None:
    sas = await _acme(channel)
    await create_org(channel, "globex", "gina")
    gina = (("x-orgauthz-actor", "user:gina"),)
    for org, sa, md in (("acme", "robot", gina), ("globex", "robot", gina), ("acme", "nope", ALICE)):
        e = await error(sas.UpdateServiceAccount(_update(org, sa, name="x"), metadata=md))
        assert e.code() == C.NOT_FOUND, (org, sa)


async def test_update_bounds_name_the_field(app: App, channel) -> None:
    sas = await _acme(channel)
    before = head(app)
    for request, field in (
        (_update(org=""), "organization"),
        (_update(sa="a b"), "id"),
        (_update(name="n" * 201), "name"),
        (_update(name="Ro\u202ebot"), "name"),
        (_update(role="r o l e"), "org_role"),
    ):
        e = await error(sas.UpdateServiceAccount(request, metadata=ALICE))
        assert e.code() == C.INVALID_ARGUMENT, field
        assert (e.details() or "").startswith(f"{field}:"), (field, e.details())
    assert head(app) == before
