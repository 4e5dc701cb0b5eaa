"""An administrator's day, end to end through the typed Python client (docs/admin-guide.md), on
SQLite and PostgreSQL, against a server that requires the shared secret.

Alice bootstraps Acme, invites Bob and Carol, they accept; she creates the Production
workspace, shares it with Bob, sets its default role so that everyone at Acme sees it,
creates a CI service account whose key is used to authenticate and to act, rotates that key
with and without a grace period (R13), and reads the audit log back in order. Then she
restricts the production work pool to the CI account and grants Carol run on one deployment
(R26, R27).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.client import Aborted, Client, FailedPrecondition, PermissionDenied, Unauthenticated
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import invitations_pb2 as ipb
from tests.conftest import settings_for

TOKEN = "admin-day-secret"

EXPECTED_EVENTS = [
    "orgauthz.organization.created",
    "orgauthz.invitation.created",  # bob
    "orgauthz.invitation.created",  # carol
    "orgauthz.invitation.accepted",  # bob
    "orgauthz.invitation.accepted",  # carol
    "orgauthz.workspace.created",
    "orgauthz.workspace-access.granted",  # bob, Developer
    "orgauthz.workspace.default-role-set",  # Viewer for Anyone at Acme
    "orgauthz.service-account.created",
    "orgauthz.workspace-access.granted",  # ci, Runner
    "orgauthz.api-key.rotated",  # with a one-hour grace period
    "orgauthz.api-key.rotated",  # without
]


@pytest.fixture
async def server(store_url: str) -> AsyncIterator[App]:
    app = App(settings_for(store_url, insecure_dev=False, auth_token=TOKEN))
    await app.start()
    yield app
    await app.stop(0)


def unauthenticated(call: object, *args: object) -> bool:
    try:
        call(*args)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[no-any-return]
    return False


def administrators_day(address: str) -> None:
    # 1. Bootstrap the organization with its first Owner: a platform call (no actor needed).
    with Client(address, token=TOKEN) as platform:
        org = platform.create_organization(
            id="acme", handle="acme", name="Acme Inc.", admin_user_id="alice", admin_email="alice@acme.test"
        )
        assert org.organization.limits.max_members > 0

    alice = Client(address, token=TOKEN, actor="user:alice")
    bob = Client(address, token=TOKEN, actor="user:bob")
    carol = Client(address, token=TOKEN, actor="user:carol")
    with alice, bob, carol:
        # 2. Invite two people; without SMTP the one-time tokens come back to the caller (R9).
        invited = alice.create_invitations(
            organization="acme", emails=["bob@acme.test", "carol@acme.test"], org_role="Member"
        )
        tokens = {r.email: r.token for r in invited.results}
        assert [r.outcome for r in invited.results] == [ipb.INVITATION_OUTCOME_INVITED] * 2

        # 3. Each accepts with the token and the verified email (R6).
        for client, email in [(bob, "bob@acme.test"), (carol, "carol@acme.test")]:
            accepted = client.accept_invitation(token=tokens[email], email=email)
            assert accepted.invitation.status == ipb.INVITATION_STATUS_ACCEPTED
        with pytest.raises(FailedPrecondition):  # a token works once
            bob.accept_invitation(token=tokens["bob@acme.test"], email="bob@acme.test")
        members = alice.list_members(organization="acme")
        assert [(m.user_id, m.role) for m in members.members] == [
            ("alice", "Owner"),
            ("bob", "Member"),
            ("carol", "Member"),
        ]

        # 4. Create a workspace. Members have no access to it yet (No Access is the default, R17).
        ws = alice.create_workspace(organization="acme", id="acme-prod", handle="production", name="Production")
        assert ws.workspace.default_role == ""
        assert not alice.check("user:bob", workspace="acme-prod", scope="see_flows").allowed

        # 5. Share it with Bob as a Developer (R16); the next Check sees it.
        alice.grant_workspace_access(workspace="acme-prod", subject="user:bob", role="Developer")
        r = alice.check("user:bob", workspace="acme-prod", scope="manage_deployments", explain=True)
        assert r.allowed
        assert r.reasons == ["workspace role Developer"]

        # 6. Everyone at Acme may look: default role Viewer (R17, R18).
        assert not alice.check("user:carol", workspace="acme-prod", scope="see_flows").allowed
        alice.set_default_role(workspace="acme-prod", role="Viewer")
        r = alice.check("user:carol", workspace="acme-prod", scope="see_flows", explain=True)
        assert r.allowed
        assert r.reasons == ["default workspace role Viewer"]
        assert not alice.check("user:carol", workspace="acme-prod", scope="run_deployments").allowed
        with pytest.raises(PermissionDenied):  # a Member manages no access
            carol.grant_workspace_access(workspace="acme-prod", subject="user:carol", role="Owner")

        # 7. A service account for CI; its key is shown once (R12) and only masked afterwards.
        created = alice.create_service_account(organization="acme", id="ci", name="CI deployer")
        key = created.api_key
        assert key.startswith("pnb_")
        listed = alice.list_service_accounts(organization="acme")
        assert key not in str(listed)
        assert listed.service_accounts[0].keys[0].masked.startswith("pnb_")
        alice.grant_workspace_access(workspace="acme-prod", subject="service_account:ci", role="Runner")

        # ... the key authenticates (R14) and acts as the service account.
        who = alice.authenticate(key)
        assert (who.service_account, who.organization) == ("ci", "acme")
        with Client(address, token=TOKEN, api_key=key) as ci:
            assert [w.id for w in ci.iter_workspaces(organization="acme")] == ["acme-prod"]
            assert ci.check("service_account:ci", workspace="acme-prod", scope="run_deployments").allowed
            with pytest.raises(PermissionDenied):
                ci.create_service_account(organization="acme", name="ci-2")
            with pytest.raises(PermissionDenied):
                ci.delete_service_account(organization="acme", id="ci")
        sa = alice.get_service_account(organization="acme", id="ci").service_account
        assert (sa.name, sa.org_role, [k.active for k in sa.keys]) == ("CI deployer", "Member", [True])
        assert key not in str(sa)

        # 8. Rotate with a one-hour grace period: the old key keeps working (R13) ...
        rotated = alice.rotate_service_account_key(organization="acme", id="ci", grace_period_seconds=3600)
        second = rotated.api_key
        assert alice.authenticate(key).service_account == "ci"
        assert alice.authenticate(second).service_account == "ci"
        assert [(k.active, k.HasField("revoked_at")) for k in rotated.service_account.keys] == [
            (True, False),
            (True, True),
        ]

        # ... rotate without one: every older key stops at once.
        third = alice.rotate_service_account_key(organization="acme", id="ci").api_key
        assert unauthenticated(alice.authenticate, key)
        assert unauthenticated(alice.authenticate, second)
        assert alice.authenticate(third).service_account == "ci"
        with Client(address, token=TOKEN, api_key=second) as stale, pytest.raises(Unauthenticated):
            stale.list_workspaces(organization="acme")

        # 9. The audit log, newest first: read it back oldest first.
        page = alice.list_audit_events(organization="acme")
        events = list(reversed(page.events))
        assert [e.event for e in events] == EXPECTED_EVENTS
        assert [e.actor for e in events[:4]] == ["platform", "user:alice", "user:alice", "user:bob"]
        revisions = [e.revision for e in events]
        assert revisions == sorted(revisions)
        assert all(key not in str(e) and second not in str(e) and third not in str(e) for e in events)
        rotations = alice.list_audit_events(organization="acme", event="orgauthz.api-key.rotated", page_size=1)
        assert (rotations.events[0].event, dict(rotations.events[0].details), bool(rotations.next_page_token)) == (
            "orgauthz.api-key.rotated",
            {"key_expires_at": None, "grace_period_s": 0.0},
            True,
        )

        # Restrict a deployment or a work pool (R26, R27).
        def may(subject: str, scope: str, obj: str) -> bool:
            return alice.check(subject, workspace="acme-prod", scope=scope, obj=obj).allowed

        pool = alice.set_acl(
            workspace="acme-prod",
            object="work_pool:prod-pool",
            entries=[{"subject": "service_account:ci", "level": "run"}],
        )
        alice.set_deployment_work_pool(workspace="acme-prod", deployment="nightly", work_pool="prod-pool")
        assert pool.acl.revision == revisions[-1] + 1
        assert may("service_account:ci", "run_deployments", "deployment:nightly")
        assert not may("user:bob", "run_deployments", "deployment:nightly")
        assert may("user:bob", "run_deployments", "deployment:adhoc")
        explained = alice.check(
            "user:bob", workspace="acme-prod", scope="run_deployments", obj="deployment:nightly", explain=True
        )
        assert explained.reasons[0] == "workspace role Developer"
        report = alice.set_acl(
            workspace="acme-prod",
            object="deployment:daily-report",
            entries=[
                {"subject": "user:carol", "level": "run", "grant": True},
                {"subject": "user:bob", "level": "manage"},
            ],
        )
        assert may("user:carol", "run_deployments", "deployment:daily-report")
        assert not may("user:carol", "run_deployments", "deployment:nightly")
        assert may("user:bob", "manage_deployments", "deployment:daily-report")
        assert not may("service_account:ci", "run_deployments", "deployment:daily-report")
        with pytest.raises(Aborted) as conflict:
            alice.set_acl(
                workspace="acme-prod",
                object="deployment:daily-report",
                entries=[{"subject": "user:bob", "level": "manage"}],
            )
        assert conflict.value.field == "expected_revision"
        with pytest.raises(PermissionDenied):
            bob.set_acl(
                workspace="acme-prod",
                object="deployment:daily-report",
                entries=[],
                expected_revision=report.acl.revision,
            )
        plans = {}
        for who in ("user:carol", "user:bob", "service_account:ci"):
            plan = alice.plan_objects(who, workspace="acme-prod", kind="deployment", scope="run_deployments")
            plans[who] = (apb.PlanObjectsResponse.Kind.Name(plan.kind), list(plan.ids))
        assert plans == {
            "user:carol": ("ONLY", ["daily-report"]),
            "user:bob": ("ALL_EXCEPT", ["nightly"]),
            "service_account:ci": ("ALL_EXCEPT", ["daily-report"]),
        }
        got = alice.get_acl(workspace="acme-prod", object="deployment:nightly")
        assert not got.HasField("acl")
        assert got.work_pool == "work_pool:prod-pool"
        assert [(e.subject, e.level) for e in got.governed_by.entries] == [("service_account:ci", "run")]
        alice.clear_acl(workspace="acme-prod", object="work_pool:prod-pool", expected_revision=pool.acl.revision)
        assert may("user:bob", "run_deployments", "deployment:nightly")
        page = alice.list_audit_events(organization="acme", page_size=4)
        assert [e.event for e in reversed(page.events)] == [
            "orgauthz.object-acl.created",
            "orgauthz.deployment-work-pool.updated",
            "orgauthz.object-acl.created",
            "orgauthz.object-acl.deleted",
        ]


async def test_an_administrators_day(server: App) -> None:
    await asyncio.to_thread(administrators_day, f"127.0.0.1:{server.port}")
