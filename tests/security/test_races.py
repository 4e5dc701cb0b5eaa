"""Races against PostgreSQL, each repeated many times (``ORGAUTHZ_TEST_SCALE`` multiplies the
rounds). Two servers share one database, and the racing calls are spread over both.

- concurrent accepts of one invitation: exactly one wins (R6);
- concurrent invitations at the member limit: never exceeded (R10);
- concurrent grant/change/revoke of one (workspace, subject): the stored role is the one
  written by the call that committed the highest revision, and Check agrees on both servers;
- key rotation while the old key is in use: once the rotation has returned, the old key
  never works again (no grace period), and the new one works at once (R13): a management
  call reads the key from the store, and Authenticate, served from memory, is given the
  rotation's revision as ``min_revision`` (R14, SPEC §3).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.store.importer import import_document
from orgauthz.store.models import Invitation, Membership, WorkspaceGrant
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.conftest import settings_for
from tests.support.rpcs import actor, scaled
from tests.support.services import PgCluster

pytestmark = [pytest.mark.postgres]
C = grpc.StatusCode
ROUNDS = scaled(20)
STATS: Counter[str] = Counter()
_n = itertools.count()


class Pair:
    """Two servers on one PostgreSQL database, with a channel to each."""

    def __init__(self, apps: list[App], channels: list[grpc.aio.Channel]) -> None:
        self.apps, self.channels = apps, channels

    def stub(self, cls: Any, i: int) -> Any:
        return cls(self.channels[i % 2])

    async def seed(self, policy: PolicySet, org: dict[str, Any]) -> None:
        rev = import_document(self.apps[0].db, policy, {"organizations": [org]}).revision
        for app in self.apps:
            await app.feed.wait_for(rev, 10)


@pytest.fixture
async def pair(pg: PgCluster) -> AsyncIterator[Pair]:
    name = f"races{next(_n)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    apps = [App(settings_for(pg.url(name), migrate=False)) for _ in range(2)]
    for app in apps:
        await app.start()
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") for app in apps]
    yield Pair(apps, channels)
    for ch in channels:
        await ch.close()
    for app in apps:
        await app.stop(0)
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def org(o: str, *, members: int = 50) -> dict[str, Any]:
    return {
        "id": o,
        "handle": o,
        "name": o,
        "limits": {"members": members, "service_accounts": 5, "workspaces": 5},
        "members": [
            {"user": f"{o}-admin", "email": f"admin@{o}.test", "role": "Admin"},
            {"user": f"{o}-bob", "email": f"bob@{o}.test", "role": "Member"},
        ],
        "workspaces": [{"id": f"{o}-ws", "handle": "ws"}],
    }


async def outcome(call: Any) -> tuple[grpc.StatusCode, Any]:
    try:
        return C.OK, await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc


async def test_r6_concurrent_accepts_of_one_invitation_exactly_one_wins(pair: Pair, policy: PolicySet) -> None:
    for r in range(ROUNDS):
        o = f"acc{r}"
        await pair.seed(policy, org(o))
        inv = await pair.stub(ipbg.InvitationServiceStub, 0).CreateInvitations(
            ipb.CreateInvitationsRequest(organization=o, emails=[f"new@{o}.test"]), metadata=actor(f"{o}-admin")
        )
        token = inv.results[0].token
        users = [f"{o}-claim{i}" for i in range(6)]  # six users presenting one token and the invited address
        results = await asyncio.gather(
            *(
                outcome(
                    pair.stub(ipbg.InvitationServiceStub, i).AcceptInvitation(
                        ipb.AcceptInvitationRequest(token=token, user_id=u, email=f"NEW@{o}.test"), metadata=actor(u)
                    )
                )
                for i, u in enumerate(users)
            )
        )
        codes = [c for c, _ in results]
        assert codes.count(C.OK) == 1, codes
        assert set(codes) <= {C.OK, C.FAILED_PRECONDITION, C.NOT_FOUND, C.PERMISSION_DENIED}, codes
        winner = users[codes.index(C.OK)]
        with pair.apps[0].db.read() as s:
            joined = set(s.scalars(select(Membership.user_id).where(Membership.org_id == o)))
            status = s.scalar(select(Invitation.status).where(Invitation.org_id == o))
        assert joined == {f"{o}-admin", f"{o}-bob", winner}
        assert status == "accepted"
        STATS["accept races"] += 1
    print(f"\n[races] {ROUNDS} rounds of 6 concurrent accepts of one token: exactly one won each time")


async def test_r10_concurrent_invites_at_the_member_limit_never_exceed_it(pair: Pair, policy: PolicySet) -> None:
    for r in range(ROUNDS):
        o = f"lim{r}"
        free = 1 + r % 3
        await pair.seed(policy, org(o, members=2 + free))
        calls = [
            pair.stub(ipbg.InvitationServiceStub, i).CreateInvitations(
                ipb.CreateInvitationsRequest(
                    organization=o, emails=[f"p{i}@{o}.test"] + ([f"q{i}@{o}.test"] if i % 3 == 0 else [])
                ),
                metadata=actor(f"{o}-admin"),
            )
            for i in range(8)
        ]
        results = await asyncio.gather(*(outcome(c) for c in calls))
        assert {c for c, _ in results} <= {C.OK, C.RESOURCE_EXHAUSTED}, results
        invited = sum(len(x.results) for c, x in results if c == C.OK)
        with pair.apps[0].db.read() as s:
            members = s.scalar(select(func.count()).select_from(Membership).where(Membership.org_id == o))
            pending = s.scalar(
                select(func.count())
                .select_from(Invitation)
                .where(Invitation.org_id == o, Invitation.status == "pending")
            )
        assert members + pending <= 2 + free, (members, pending, free)
        assert pending == invited  # every acknowledged invitation is stored, nothing else
        assert invited >= 1  # the first one to commit always fits
        STATS["limit races"] += 1
    print(f"[races] {ROUNDS} rounds of 8 concurrent invitations at the member limit: never exceeded")


async def test_concurrent_grant_change_revoke_last_committed_write_wins(pair: Pair, policy: PolicySet) -> None:
    rng = random.Random(7)
    checks = 0
    for r in range(ROUNDS):
        o = f"gr{r}"
        await pair.seed(policy, org(o))
        ws, subject = f"{o}-ws", f"user:{o}-bob"
        ops: list[tuple[str, str | None, Any]] = []
        for i in range(8):
            acc = pair.stub(mpbg.AccessServiceStub, i)
            role = rng.choice(["Viewer", "Developer", "Runner"])
            kind = rng.choice(["grant", "change", "revoke"])
            md = actor(f"{o}-admin")
            if kind == "grant":
                call = acc.GrantWorkspaceAccess(
                    mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role), metadata=md
                )
            elif kind == "change":
                call = acc.ChangeWorkspaceAccess(
                    mpb.ChangeWorkspaceAccessRequest(workspace=ws, subject=subject, role=role), metadata=md
                )
            else:
                call = acc.RevokeWorkspaceAccess(
                    mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject), metadata=md
                )
            ops.append((kind, None if kind == "revoke" else role, call))
        results = await asyncio.gather(*(outcome(c) for _, _, c in ops))
        assert {c for c, _ in results} <= {C.OK, C.ALREADY_EXISTS, C.NOT_FOUND}, results
        committed = sorted(
            (int(x.revision), role) for (_, role, _), (c, x) in zip(ops, results, strict=True) if c == C.OK
        )
        expected = committed[-1][1] if committed else None
        head = committed[-1][0] if committed else 0
        with pair.apps[0].db.read() as s:
            stored = s.scalar(
                select(WorkspaceGrant.role).where(WorkspaceGrant.workspace_id == ws, WorkspaceGrant.subject == subject)
            )
        assert stored == expected, (committed, stored)
        for i in range(2):
            authz = pair.stub(apbg.AuthorizationServiceStub, i)
            for scope, holders in (
                ("see_flows", {"Viewer", "Developer", "Runner"}),
                ("run_deployments", {"Developer", "Runner"}),
                ("manage_flows", {"Developer"}),
            ):
                resp = await authz.Check(
                    apb.CheckRequest(subject=subject, workspace=ws, scope=scope, min_revision=head)
                )
                assert resp.allowed == (expected in holders), (i, scope, expected, committed)
                checks += 1
        STATS["grant races"] += 1
    print(
        f"[races] {ROUNDS} rounds of 8 concurrent grant/change/revoke: the last committed write won; "
        f"{checks} Checks on both servers agreed"
    )


async def test_r13_rotation_while_the_old_key_is_in_use(pair: Pair, policy: PolicySet) -> None:
    late_uses = 0
    for r in range(ROUNDS):
        o = f"rot{r}"
        await pair.seed(policy, org(o))
        sas = pair.stub(spbg.ServiceAccountServiceStub, 0)
        created = await sas.CreateServiceAccount(
            spb.CreateServiceAccountRequest(organization=o, id=f"{o}-bot", name="bot"), metadata=actor(f"{o}-admin")
        )
        old = created.api_key
        rotated_at: list[float] = []
        rotated_rev: list[int] = []
        uses: list[tuple[float, float, grpc.StatusCode]] = []
        stop = asyncio.Event()

        async def use(
            i: int,
            old: str = old,
            o: str = o,
            stop: asyncio.Event = stop,
            uses: list[tuple[float, float, grpc.StatusCode]] = uses,
            rotated_rev: list[int] = rotated_rev,
        ) -> None:
            authz = pair.stub(apbg.AuthorizationServiceStub, i)
            mgmt = pair.stub(spbg.ServiceAccountServiceStub, i)
            while not stop.is_set():
                start = time.monotonic()
                if i % 2:
                    req = apb.AuthenticateRequest(api_key=old, min_revision=rotated_rev[0] if rotated_rev else 0)
                    c, _ = await outcome(authz.Authenticate(req))
                else:  # the old key acting as the service account itself
                    c, _ = await outcome(
                        mgmt.ListServiceAccounts(
                            spb.ListServiceAccountsRequest(organization=o), metadata=(("x-orgauthz-api-key", old),)
                        )
                    )
                uses.append((start, time.monotonic(), c))

        users = [asyncio.create_task(use(i)) for i in range(4)]
        await asyncio.sleep(0.05)
        rot = await pair.stub(spbg.ServiceAccountServiceStub, r).RotateServiceAccountKey(
            spb.RotateServiceAccountKeyRequest(organization=o, id=f"{o}-bot"), metadata=actor(f"{o}-admin")
        )
        rotated_rev.append(rot.revision)  # before the time: a use started after it carries it
        rotated_at.append(time.monotonic())
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*users)
        codes = {c for _, _, c in uses}
        assert codes <= {C.OK, C.UNAUTHENTICATED, C.PERMISSION_DENIED}, codes
        after = [u for u in uses if u[0] > rotated_at[0]]
        assert after, "no use of the old key after the rotation"
        assert all(c == C.UNAUTHENTICATED for _, _, c in after), "the old key worked after the rotation returned"
        assert any(c != C.UNAUTHENTICATED for s, _, c in uses if s < rotated_at[0]), "the old key never worked"
        late_uses += len(after)
        for i in range(2):
            r2 = await pair.stub(apbg.AuthorizationServiceStub, i).Authenticate(
                apb.AuthenticateRequest(api_key=rot.api_key)
            )
            assert r2.service_account == f"{o}-bot"
        STATS["rotation races"] += 1
    print(f"[races] {ROUNDS} rotations under load: {late_uses} uses of the old key after rotation, all refused")
