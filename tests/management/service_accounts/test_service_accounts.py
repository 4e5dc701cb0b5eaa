"""Service accounts and API keys through the gRPC path (R10-R14), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import bindparam, inspect, select, text, update

from orgauthz.api.server import App
from orgauthz.store.db import utcnow
from orgauthz.store.models import ApiKey, AuditEvent, ServiceAccount
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipb_grpc
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpb_grpc
from orgauthz.v1 import service_accounts_pb2 as pb
from orgauthz.v1 import service_accounts_pb2_grpc as pb_grpc
from tests.support.orgs import ACME_SERVICE_ACCOUNTS, GLOBEX_ONE_ADMIN, doc, seed
from tests.support.store import commit_rows

# Keys aged by a test instead of waited for.
_AGE_REVOKED = update(ApiKey).where(ApiKey.revoked_at.is_not(None)).values(revoked_at=bindparam("at"))
_AGE_EXPIRING = update(ApiKey).where(ApiKey.expires_at.is_not(None)).values(expires_at=bindparam("at"))


def as_user(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-orgauthz-actor", f"user:{user}"),)


@pytest.fixture
async def sas(app: App, channel: grpc.aio.Channel, policy) -> pb_grpc.ServiceAccountServiceStub:
    revision = seed(app.db, policy, doc(ACME_SERVICE_ACCOUNTS, GLOBEX_ONE_ADMIN))
    await app.feed.wait_for(revision, 10)
    return pb_grpc.ServiceAccountServiceStub(channel)


async def create(
    stub, name: str, *, role: str = "", ttl: int = 0, by: str = "alice", sa_id: str = ""
) -> pb.CreateServiceAccountResponse:
    return await stub.CreateServiceAccount(
        pb.CreateServiceAccountRequest(
            organization="acme", id=sa_id, name=name, org_role=role, key_expires_in_seconds=ttl
        ),
        metadata=as_user(by),
    )


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def auth_code(authz, key: str, min_revision: int = 0) -> grpc.StatusCode:
    try:
        await authz.Authenticate(apb.AuthenticateRequest(api_key=key, min_revision=min_revision))
    except grpc.aio.AioRpcError as err:
        failure = err
    else:
        return grpc.StatusCode.OK
    assert not key or key not in (failure.details() or "")  # a failed key is never echoed
    return failure.code()


async def test_r11_service_account_never_admin(app: App, sas, authz) -> None:
    assert await code_of(create(sas, "root", role="Admin")) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(create(sas, "x", role="Owner")) == grpc.StatusCode.INVALID_ARGUMENT  # workspace role
    assert await code_of(create(sas, "x", role="nope")) == grpc.StatusCode.INVALID_ARGUMENT
    member = await create(sas, "ci bot")
    assert member.service_account.org_role == "Member"
    custom = await create(sas, "auditor bot", role="auditor")
    subject = f"service_account:{custom.service_account.id}"
    c = await authz.Check(apb.CheckRequest(subject=subject, organization="acme", scope="read:audit_event"))
    assert c.allowed
    c = await authz.Check(apb.CheckRequest(subject=subject, organization="acme", scope="create:invitation"))
    assert not c.allowed
    # Names are unique in the organization; only holders of create:service_account create.
    assert await code_of(create(sas, "ci bot")) == grpc.StatusCode.ALREADY_EXISTS
    assert await code_of(create(sas, "other", by="bob")) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(create(sas, "other", by="gina")) == grpc.StatusCode.NOT_FOUND
    # A service account acting with its own key is never an Admin either.
    key = (("x-orgauthz-api-key", member.api_key),)
    assert (
        await code_of(
            sas.CreateServiceAccount(pb.CreateServiceAccountRequest(organization="acme", name="by a bot"), metadata=key)
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )


async def test_r12_key_shown_once_and_masked(app: App, sas, authz) -> None:
    created = await create(sas, "ci bot", sa_id="ci-bot", ttl=3600)
    key = created.api_key
    assert key.startswith("pnb_")
    assert len(key) == 44
    assert created.api_key_expires_at.ToDatetime() - created.service_account.created_at.ToDatetime() == timedelta(
        hours=1
    )
    masked = f"pnb_{key[4:6]}…{key[-2:]}"
    assert [k.masked for k in created.service_account.keys] == [masked]
    got = await sas.GetServiceAccount(
        pb.GetServiceAccountRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
    )
    listed = await sas.ListServiceAccounts(
        pb.ListServiceAccountsRequest(organization="acme"), metadata=as_user("alice")
    )
    for shown in (got.service_account, listed.service_accounts[0]):
        assert key not in str(shown)
        assert shown.keys[0].masked == masked
        assert shown.keys[0].active
    never = await create(sas, "forever")
    assert not never.HasField("api_key_expires_at")
    assert not never.service_account.keys[0].HasField("expires_at")
    r = await authz.Authenticate(apb.AuthenticateRequest(api_key=key))
    assert (r.service_account, r.organization, r.subject) == ("ci-bot", "acme", "service_account:ci-bot")


async def test_r13_rotation_grace_period(app: App, sas, authz) -> None:
    first = (await create(sas, "ci bot", sa_id="ci-bot")).api_key
    rot = await sas.RotateServiceAccountKey(
        pb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot", grace_period_seconds=3600),
        metadata=as_user("alice"),
    )
    second = rot.api_key
    assert second != first
    assert rot.revision > 0
    assert await auth_code(authz, first) == grpc.StatusCode.OK  # within its grace period
    assert await auth_code(authz, second) == grpc.StatusCode.OK
    assert len(rot.service_account.keys) == 2
    # The grace period ends (moved into the past rather than waited for, by a write straight
    # to the store, as another replica's: answered once this server has applied it).
    aged = await commit_rows(
        app.db,
        "acme",
        "test.grace-over",
        (_AGE_REVOKED, {"at": utcnow() - timedelta(seconds=1)}),
        keys=("service_account:ci-bot",),
    )
    assert await auth_code(authz, first, aged.revision) == grpc.StatusCode.UNAUTHENTICATED
    # Default: no grace, the old key stops at once.
    third = (
        await sas.RotateServiceAccountKey(
            pb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
        )
    ).api_key
    assert await auth_code(authz, second) == grpc.StatusCode.UNAUTHENTICATED
    assert await auth_code(authz, third) == grpc.StatusCode.OK
    for too_long in (48 * 3600 + 1, 10**6):
        assert (
            await code_of(
                sas.RotateServiceAccountKey(
                    pb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot", grace_period_seconds=too_long),
                    metadata=as_user("alice"),
                )
            )
            == grpc.StatusCode.INVALID_ARGUMENT
        )
    assert (
        await code_of(
            sas.RotateServiceAccountKey(
                pb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot"), metadata=as_user("bob")
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )


async def test_r13_deleted_service_account_denied_at_once(app: App, sas, authz, channel) -> None:
    key = (await create(sas, "ci bot", sa_id="ci-bot")).api_key
    access = mpb_grpc.AccessServiceStub(channel)
    await access.GrantWorkspaceAccess(
        mpb.GrantWorkspaceAccessRequest(workspace="acme-prod", subject="service_account:ci-bot", role="Developer"),
        metadata=as_user("alice"),
    )
    check = apb.CheckRequest(subject="service_account:ci-bot", workspace="acme-prod", scope="manage_flows")
    assert (await authz.Check(check)).allowed
    deleted = await sas.DeleteServiceAccount(
        pb.DeleteServiceAccountRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
    )
    c = await authz.Check(check)
    assert not c.allowed
    assert c.revision >= deleted.revision
    c = await authz.Check(apb.CheckRequest(subject="service_account:ci-bot", organization="acme", scope="read:account"))
    assert not c.allowed
    assert await auth_code(authz, key) == grpc.StatusCode.UNAUTHENTICATED
    with app.db.read() as s:
        assert s.get(ServiceAccount, "ci-bot") is None
        assert not list(s.scalars(select(ApiKey)))
    assert (
        await code_of(
            sas.GetServiceAccount(
                pb.GetServiceAccountRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )


async def test_r14_authenticate_unknown_expired_revoked(app: App, sas, authz) -> None:
    live = (await create(sas, "live")).api_key
    expiring = (await create(sas, "expiring", ttl=3600)).api_key
    revoked = (await create(sas, "revoked", sa_id="revoked")).api_key
    await sas.RotateServiceAccountKey(
        pb.RotateServiceAccountKeyRequest(organization="acme", id="revoked"), metadata=as_user("alice")
    )
    await commit_rows(app.db, "acme", "test.expire", (_AGE_EXPIRING, {"at": utcnow() - timedelta(seconds=1)}))
    assert await auth_code(authz, live) == grpc.StatusCode.OK
    unknown = "pnb_" + "Z" * 40
    for key in (expiring, revoked, unknown, live[:-1], live + "x", "pnu_" + live[4:], "", "x" * 5000):
        assert await auth_code(authz, key) == grpc.StatusCode.UNAUTHENTICATED
    # The same rules decide the actor of a management call presenting a key.
    get = pb.GetServiceAccountRequest(organization="acme", id="revoked")
    delete = pb.DeleteServiceAccountRequest(organization="acme", id="revoked")
    assert (
        await code_of(sas.GetServiceAccount(get, metadata=(("x-orgauthz-api-key", expiring),)))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await code_of(sas.DeleteServiceAccount(delete, metadata=(("x-orgauthz-api-key", live),)))
        == grpc.StatusCode.PERMISSION_DENIED
    )  # authenticated; Member lacks delete:service_account
    seen = await sas.GetServiceAccount(get, metadata=(("x-orgauthz-api-key", live),))  # R30: Members read them
    assert seen.service_account.id == "revoked"


async def test_r10_service_account_limit(app: App, sas) -> None:
    for i in range(3):
        await create(sas, f"bot {i}")
    assert await code_of(create(sas, "one too many")) == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_r10_service_account_limit_holds_under_concurrent_creates(app: App, sas) -> None:
    outcomes = await asyncio.gather(*(create(sas, f"bot {i}") for i in range(10)), return_exceptions=True)
    assert sum(isinstance(o, pb.CreateServiceAccountResponse) for o in outcomes) == 3
    assert {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)} == {grpc.StatusCode.RESOURCE_EXHAUSTED}


async def test_service_account_audit_events_carry_no_secret(app: App, sas) -> None:
    key = (await create(sas, "ci bot", sa_id="ci-bot")).api_key
    rotated = (
        await sas.RotateServiceAccountKey(
            pb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot", grace_period_seconds=60),
            metadata=as_user("alice"),
        )
    ).api_key
    await sas.DeleteServiceAccount(
        pb.DeleteServiceAccountRequest(organization="acme", id="ci-bot"), metadata=as_user("alice")
    )
    with app.db.read() as s:
        events = [
            (e.event, e.actor, e.org_id, e.target, e.details)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.org_id == "acme").order_by(AuditEvent.id))
        ]
    assert [e[:4] for e in events] == [
        ("orgauthz.service-account.created", "user:alice", "acme", "service_account:ci-bot"),
        ("orgauthz.api-key.rotated", "user:alice", "acme", "service_account:ci-bot"),
        ("orgauthz.service-account.deleted", "user:alice", "acme", "service_account:ci-bot"),
    ]
    assert key not in str(events)
    assert rotated not in str(events)


async def test_no_plaintext_key_or_token_in_any_table_or_log(app: App, sas, authz, channel, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_seen: list[str] = []
    created = await create(sas, "ci bot", sa_id="ci-bot")
    secrets_seen.append(created.api_key)
    secrets_seen.append(
        (
            await sas.RotateServiceAccountKey(
                pb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot", grace_period_seconds=60),
                metadata=as_user("alice"),
            )
        ).api_key
    )
    invites = ipb_grpc.InvitationServiceStub(channel)
    r = await invites.CreateInvitations(
        ipb.CreateInvitationsRequest(organization="acme", emails=["dan@example.com", "erin@example.com"]),
        metadata=as_user("alice"),
    )
    tokens = [x.token for x in r.results]
    secrets_seen += tokens
    await invites.AcceptInvitation(
        ipb.AcceptInvitationRequest(token=tokens[0], email="dan@example.com"), metadata=as_user("dan")
    )
    # Failed attempts with real and made-up secrets must not reach the logs either.
    failed = ["pnb_" + "Q" * 40, secrets_seen[0] + "x", "pnb_short"]
    for key in failed:
        await auth_code(authz, key)
        with pytest.raises(grpc.aio.AioRpcError):
            await sas.ListServiceAccounts(
                pb.ListServiceAccountsRequest(organization="acme"), metadata=(("x-orgauthz-api-key", key),)
            )
    with pytest.raises(grpc.aio.AioRpcError):
        await invites.AcceptInvitation(
            ipb.AcceptInvitationRequest(token=tokens[0], email="dan@example.com"), metadata=as_user("dan")
        )
    dump = []
    with app.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            dump += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    dumped = "\n".join(dump)
    assert "pnb_" in dumped  # masked keys are there
    for secret in [*secrets_seen, *failed]:
        assert secret not in dumped
        assert secret[4:] not in dumped  # nor the key body alone
        assert secret not in caplog.text
