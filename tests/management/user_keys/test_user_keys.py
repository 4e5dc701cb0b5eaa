"""Users' personal API keys through the gRPC path (R29, R14), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from sqlalchemy import select

from orgauthz.api.server import App
from orgauthz.domain.rules import USER_KEYS_MAX
from orgauthz.store.models import AuditEvent, UserApiKey
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import user_api_keys_pb2 as pb
from orgauthz.v1 import user_api_keys_pb2_grpc as pbg
from tests.management.user_keys.support import as_user, authenticate, create_key, status, with_key
from tests.support.orgs import ACME_SERVICE_ACCOUNTS, GLOBEX_ONE_ADMIN, doc, seed
from tests.support.rpcs import fingerprint

C = grpc.StatusCode


@pytest.fixture
async def keys(app: App, channel: grpc.aio.Channel, policy) -> pbg.UserApiKeyServiceStub:
    """acme (alice Admin, bob Member, acme-prod whose default role is Viewer) and globex (gina)."""
    revision = seed(app.db, policy, doc(ACME_SERVICE_ACCOUNTS, GLOBEX_ONE_ADMIN))
    await app.feed.wait_for(revision, 10)
    return pbg.UserApiKeyServiceStub(channel)


async def test_r29_key_shown_once_stored_as_a_hash_listed_masked_and_deletable(app: App, keys, authz) -> None:
    created = await create_key(keys, "alice", "laptop", ttl=3600)
    key = created.api_key
    assert key.startswith("pnu_")
    assert len(key) == 44
    masked = f"pnu_{key[4:6]}…{key[-2:]}"
    assert created.key.masked == masked
    assert created.key.name == "laptop"
    assert created.key.user_id == "alice"
    assert created.key.active
    assert (created.key.expires_at.ToDatetime() - created.key.created_at.ToDatetime()).total_seconds() == 3600
    assert created.revision > 0
    # Only the hash is stored; reads show the masked key, never the key.
    with app.db.read() as s:
        (row,) = s.scalars(select(UserApiKey))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in repr((row.id, row.user_id, row.name, row.masked, row.key_hash))
    listed = await keys.ListUserApiKeys(pb.ListUserApiKeysRequest(user_id="alice"), metadata=as_user("alice"))
    assert [(k.id, k.masked, k.active) for k in listed.keys] == [(created.key.id, masked, True)]
    assert key not in str(listed)
    never = await create_key(keys, "alice", "ci")
    assert not never.key.HasField("expires_at")
    # Paged, ordered by id.
    ids = sorted([created.key.id, never.key.id])
    first = await keys.ListUserApiKeys(
        pb.ListUserApiKeysRequest(user_id="alice", page_size=1), metadata=as_user("alice")
    )
    assert [k.id for k in first.keys] == ids[:1]
    rest = await keys.ListUserApiKeys(
        pb.ListUserApiKeysRequest(user_id="alice", page_size=1, page_token=first.next_page_token),
        metadata=as_user("alice"),
    )
    assert [k.id for k in rest.keys] == ids[1:]
    assert not rest.next_page_token
    # Deleted: gone from the list, and no longer a key.
    ok = await authenticate(authz, key)
    assert not isinstance(ok, grpc.StatusCode)
    deleted = await keys.DeleteUserApiKey(
        pb.DeleteUserApiKeyRequest(user_id="alice", id=created.key.id), metadata=as_user("alice")
    )
    assert deleted.revision > never.revision
    listed = await keys.ListUserApiKeys(pb.ListUserApiKeysRequest(user_id="alice"), metadata=as_user("alice"))
    assert [k.id for k in listed.keys] == [never.key.id]
    assert await authenticate(authz, key) == C.UNAUTHENTICATED
    again = pb.DeleteUserApiKeyRequest(user_id="alice", id=created.key.id)
    assert await status(keys.DeleteUserApiKey(again, metadata=as_user("alice"))) == C.NOT_FOUND


async def test_r29_only_the_user_themself_manages_their_keys(app: App, keys, channel) -> None:
    alices = await create_key(keys, "alice")
    alice_key = alices.api_key
    bobs = await create_key(keys, "bob")
    sa = await spbg.ServiceAccountServiceStub(channel).CreateServiceAccount(
        spb.CreateServiceAccountRequest(organization="acme", id="robot", name="robot"), metadata=as_user("alice")
    )
    create = pb.CreateUserApiKeyRequest(user_id="alice", name="x")
    listing = pb.ListUserApiKeysRequest(user_id="alice")
    delete = pb.DeleteUserApiKeyRequest(user_id="alice", id=alices.key.id)
    before = fingerprint(app.db)
    for metadata, who in (
        (as_user("bob"), "another user"),
        (as_user("gina"), "a user of another organization"),
        (with_key(sa.api_key), "a service account"),
        (with_key(alice_key), "the user's own key"),
    ):
        assert await status(keys.CreateUserApiKey(create, metadata=metadata)) == C.PERMISSION_DENIED, who
        assert await status(keys.ListUserApiKeys(listing, metadata=metadata)) == C.PERMISSION_DENIED, who
        assert await status(keys.DeleteUserApiKey(delete, metadata=metadata)) == C.PERMISSION_DENIED, who
    # Alice cannot delete bob's key by naming it as hers: no such key of hers.
    theirs = pb.DeleteUserApiKeyRequest(user_id="alice", id=bobs.key.id)
    assert await status(keys.DeleteUserApiKey(theirs, metadata=as_user("alice"))) == C.NOT_FOUND
    assert await status(keys.ListUserApiKeys(listing)) == C.UNAUTHENTICATED  # no actor at all
    assert fingerprint(app.db) == before


async def test_r29_bounds_are_invalid_argument_naming_the_field_and_write_nothing(app: App, keys) -> None:
    before = fingerprint(app.db)
    alice = as_user("alice")
    refused = [
        ("name", keys.CreateUserApiKey(pb.CreateUserApiKeyRequest(user_id="alice", name=""), metadata=alice)),
        ("name", keys.CreateUserApiKey(pb.CreateUserApiKeyRequest(user_id="alice", name="x" * 201), metadata=alice)),
        ("name", keys.CreateUserApiKey(pb.CreateUserApiKeyRequest(user_id="alice", name="a\u202eb"), metadata=alice)),
        ("user_id", keys.CreateUserApiKey(pb.CreateUserApiKeyRequest(user_id="", name="x"), metadata=alice)),
        ("user_id", keys.CreateUserApiKey(pb.CreateUserApiKeyRequest(user_id="a b", name="x"), metadata=alice)),
        (
            "expires_in_seconds",
            keys.CreateUserApiKey(
                pb.CreateUserApiKeyRequest(user_id="alice", name="x", expires_in_seconds=10 * 365 * 24 * 3600 + 1),
                metadata=alice,
            ),
        ),
        ("page_size", keys.ListUserApiKeys(pb.ListUserApiKeysRequest(user_id="alice", page_size=1001), metadata=alice)),
        (
            "page_token",
            keys.ListUserApiKeys(pb.ListUserApiKeysRequest(user_id="alice", page_token="AAAA"), metadata=alice),
        ),
        ("user_id", keys.ListUserApiKeys(pb.ListUserApiKeysRequest(user_id="x" * 129), metadata=alice)),
        ("id", keys.DeleteUserApiKey(pb.DeleteUserApiKeyRequest(user_id="alice", id=""), metadata=alice)),
    ]
    for field, call in refused:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == C.INVALID_ARGUMENT, field
        assert (err.value.details() or "").startswith(f"{field}:"), (field, err.value.details())
    assert fingerprint(app.db) == before
    # At the bounds: accepted.
    at_most = await create_key(keys, "alice", "x" * 200, ttl=10 * 365 * 24 * 3600)
    assert at_most.key.name == "x" * 200


async def test_r29_a_user_holds_at_most_the_documented_number_of_keys(app: App, keys) -> None:
    made = [await create_key(keys, "bob", f"key {i}") for i in range(USER_KEYS_MAX)]
    before = fingerprint(app.db)
    assert await status(create_key(keys, "bob", "one too many")) == C.RESOURCE_EXHAUSTED
    assert fingerprint(app.db) == before
    assert (await create_key(keys, "alice")).api_key  # a limit per user
    await keys.DeleteUserApiKey(pb.DeleteUserApiKeyRequest(user_id="bob", id=made[0].key.id), metadata=as_user("bob"))
    assert (await create_key(keys, "bob", "a replacement")).api_key


async def test_r14_authenticate_answers_the_user_of_a_user_key(app: App, keys, authz) -> None:
    created = await create_key(keys, "bob")
    r = await authenticate(authz, created.api_key)
    assert not isinstance(r, grpc.StatusCode)
    assert (r.user, r.subject, r.service_account, r.organization) == ("bob", "user:bob", "", "")
    assert r.revision >= created.revision
    # Unknown, malformed or altered keys are refused alike.
    body = created.api_key[4:]
    for wrong in ("pnu_" + "Z" * 40, created.api_key[:-1], created.api_key + "x", "pnb_" + body, "PNU_" + body, ""):
        assert await authenticate(authz, wrong) == C.UNAUTHENTICATED


async def test_r29_a_user_key_acts_as_its_user_in_management_calls(app: App, keys, channel) -> None:
    alice = with_key((await create_key(keys, "alice")).api_key)
    bob = with_key((await create_key(keys, "bob")).api_key)
    orgs, workspaces = mpbg.OrganizationServiceStub(channel), mpbg.WorkspaceServiceStub(channel)
    mine = await orgs.ListMyOrganizations(mpb.ListMyOrganizationsRequest(), metadata=alice)
    assert [(o.organization.id, o.role) for o in mine.organizations] == [("acme", "Admin")]
    made = await workspaces.CreateWorkspace(
        mpb.CreateWorkspaceRequest(organization="acme", handle="new"), metadata=alice
    )
    assert made.workspace.id
    elsewhere = mpb.CreateWorkspaceRequest(organization="globex", handle="new")
    assert await status(workspaces.CreateWorkspace(elsewhere, metadata=alice)) == C.NOT_FOUND
    assert (
        await status(
            workspaces.CreateWorkspace(mpb.CreateWorkspaceRequest(organization="acme", handle="b"), metadata=bob)
        )
        == C.PERMISSION_DENIED
    )  # a Member, as bob himself is
    listed = await workspaces.ListWorkspaces(mpb.ListWorkspacesRequest(organization="acme"), metadata=bob)
    assert "acme-prod" in [w.id for w in listed.workspaces]


async def test_r29_leaving_keeps_the_key_and_every_check_there_is_denied(app: App, keys, channel, authz) -> None:
    key = (await create_key(keys, "bob")).api_key
    who = await authenticate(authz, key)
    assert not isinstance(who, grpc.StatusCode)
    check = apb.CheckRequest(subject=who.subject, workspace="acme-prod", scope="see_flows")
    org_check = apb.CheckRequest(subject=who.subject, organization="acme", scope="read:account")
    assert (await authz.Check(check)).allowed  # the default workspace role (Viewer)
    assert (await authz.Check(org_check)).allowed
    left = await mpbg.MemberServiceStub(channel).LeaveOrganization(
        mpb.LeaveOrganizationRequest(organization="acme"), metadata=with_key(key)
    )
    # The key still resolves to bob...
    again = await authenticate(authz, key, left.revision)
    assert not isinstance(again, grpc.StatusCode)
    assert again.subject == "user:bob"
    # ...but every Check for bob in acme is denied, and acme no longer answers his key.
    for request in (check, org_check):
        r = await authz.Check(request)
        assert not r.allowed
        assert r.revision >= left.revision
    ws = mpb.ListWorkspacesRequest(organization="acme")
    assert await status(mpbg.WorkspaceServiceStub(channel).ListWorkspaces(ws, metadata=with_key(key))) == C.NOT_FOUND
    listed = await keys.ListUserApiKeys(pb.ListUserApiKeysRequest(user_id="bob"), metadata=as_user("bob"))
    assert len(listed.keys) == 1


async def test_r29_audit_events_name_the_user_belong_to_no_organization_and_carry_no_secret(
    app: App, keys, channel
) -> None:
    created = await create_key(keys, "alice", "laptop")
    await keys.DeleteUserApiKey(
        pb.DeleteUserApiKeyRequest(user_id="alice", id=created.key.id), metadata=as_user("alice")
    )
    with app.db.read() as s:
        events = [
            (e.event, e.actor, e.org_id, e.target, e.revision, e.details)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.event.like("orgauthz.api-key.%")).order_by(AuditEvent.id)
            )
        ]
    assert [e[:4] for e in events] == [
        ("orgauthz.api-key.created", "user:alice", "", "user:alice"),
        ("orgauthz.api-key.deleted", "user:alice", "", "user:alice"),
    ]
    assert events[0][4] == created.revision
    assert events[0][5]["key_id"] == created.key.id
    assert created.api_key not in str(events)
    listed = await mpbg.AuditServiceStub(channel).ListAuditEvents(
        mpb.ListAuditEventsRequest(organization="acme"), metadata=as_user("alice")
    )
    assert not [e for e in listed.events if e.event.startswith("orgauthz.api-key.")]


async def test_r29_r4_a_removed_member_keeps_the_key_and_every_check_there_is_denied(
    app: App, keys, channel, authz
) -> None:
    key = (await create_key(keys, "bob")).api_key
    who = await authenticate(authz, key)
    assert not isinstance(who, grpc.StatusCode)
    check = apb.CheckRequest(subject=who.subject, workspace="acme-prod", scope="see_flows")
    assert (await authz.Check(check)).allowed
    removed = await mpbg.MemberServiceStub(channel).RemoveMember(
        mpb.RemoveMemberRequest(organization="acme", user_id="bob"), metadata=as_user("alice")
    )
    again = await authenticate(authz, key)
    assert not isinstance(again, grpc.StatusCode)
    assert again.subject == "user:bob"
    r = await authz.Check(check)
    assert not r.allowed
    assert r.revision >= removed.revision
    ws = mpb.ListWorkspacesRequest(organization="acme")
    assert await status(mpbg.WorkspaceServiceStub(channel).ListWorkspaces(ws, metadata=with_key(key))) == C.NOT_FOUND
