"""Privilege escalation: random operation sequences by random actors, through the gRPC API,
checked after every step against the plain-Python model of SPEC §1 (tests/support/oracle.py).

Operations: invite and accept, change a member's role, grant/change/revoke workspace access,
set a workspace's default role, create/rotate/delete service accounts, remove a member (or
leave), create and update custom roles. Actors: every user and service account the
sequence has seen, including removed members and deleted or rotated-away keys.

After every step:
- every operation succeeded exactly when the model allowed it (R2, R3, R8, R11, R16, R17);
- the Admins are those the model has, and each was made Admin by an Admin (R8);
- no service account holds Admin (R11); stored members, accounts and grants equal the model's;
- every (subject, workspace, scope) sample and organization permission Check agrees with
  the model: a workspace Owner holds nothing outside its workspace, a service account never
  gets the default workspace role (R17), a removed member holds nothing (R4);
- every current key authenticates and every rotated-away or deleted key does not (R13).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from orgauthz.api.server import App
from orgauthz.store.importer import import_document
from orgauthz.store.models import Membership, ServiceAccount, WorkspaceGrant
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.conftest import settings_for
from tests.support.oracle import ADMIN, ADMINS, ORG_PERMISSIONS, OWNER, OWNERS_ONLY, WS_SCOPES, CustomRole, OrgModel
from tests.support.rpcs import scaled

C = grpc.StatusCode
SAMPLE_SCOPES = [
    "see_flows",
    "run_deployments",
    "manage_flows",
    "see_secret_blocks",
    "write_workers",
    "see_workspace_users",
    "manage_workspace_users",
    "write_workspace_settings",
]
STATS: Counter[str] = Counter()
_orgs = itertools.count()


class ServerThread:
    """An orgauthz App on its own event loop, for synchronous hypothesis state machines."""

    def __init__(self, store_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app = App(settings_for(store_url))
        self.run(self.app.start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.app.port}")

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.channel.close()
        self.run(self.app.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def server(store_url: str) -> Iterator[ServerThread]:
    s = ServerThread(store_url)
    yield s
    s.close()


class Escalation(RuleBasedStateMachine):
    server: ServerThread

    def __init__(self) -> None:
        super().__init__()
        o = f"e{next(_orgs)}"
        self.org = o
        self.ws = [f"{o}-ws1", f"{o}-ws2"]
        self.mgr, self.cw = f"{o}-mgr", f"{o}-cw"
        doc = {
            "id": o,
            "handle": o,
            "name": o,
            "limits": {"members": 10, "service_accounts": 3, "workspaces": 5},
            "members": [
                {"user": f"{o}-root", "role": OWNER},
                {"user": f"{o}-adm2", "role": ADMIN},
                {"user": f"{o}-mem", "role": "Member"},
                {"user": f"{o}-own", "role": "Member"},
                {"user": f"{o}-mgr", "role": self.mgr},
            ],
            "custom_roles": [
                {
                    "id": self.mgr,
                    "name": "Manager",
                    "level": "organization",
                    "inherits": "Member",
                    "scopes": [
                        "create:invitation",
                        "read:invitation",
                        "update:account_membership",
                        "delete:account_membership",
                        "create:bot",
                        "update:bot",
                        "delete:bot",
                        "read:bot",
                    ],
                },
                {
                    "id": self.cw,
                    "name": "Deployer",
                    "level": "workspace",
                    "inherits": "Viewer",
                    "scopes": ["run_deployments"],
                },
            ],
            "workspaces": [
                {"id": self.ws[0], "handle": "one", "access": [{"subject": f"user:{o}-own", "role": "Owner"}]},
                {"id": self.ws[1], "handle": "two", "default_role": "Viewer"},
            ],
        }
        app = self.server.app
        rev = import_document(app.db, app.management.policy, {"organizations": [doc]}).revision
        self.server.run(app.feed.wait_for(rev, 10))
        self.model = OrgModel(
            members={m["user"]: m["role"] for m in doc["members"]},  # type: ignore[index]
            workspaces={self.ws[0]: "", self.ws[1]: "Viewer"},
            grants={(self.ws[0], f"user:{o}-own"): "Owner"},
            custom={
                self.mgr: CustomRole("organization", "Member", list(doc["custom_roles"][0]["scopes"])),  # type: ignore[index]
                self.cw: CustomRole("workspace", "Viewer", ["run_deployments"]),
            },
            max_members=10,
            max_service_accounts=3,
        )
        self.users = [*list(self.model.members), "outsider"]
        self.sas: list[str] = []
        self.retired_keys: list[str] = []
        # Who ever held Owner or Admin, and Owner: nobody gets there but through one (R8, R24).
        self.ever_admin = {u for u, r in self.model.members.items() if r in ADMINS}
        self.ever_owner = self.model.holders(OWNER)
        ch = self.server.channel
        self.inv, self.mem = ipbg.InvitationServiceStub(ch), mpbg.MemberServiceStub(ch)
        self.acc, self.wss = mpbg.AccessServiceStub(ch), mpbg.WorkspaceServiceStub(ch)
        self.sa, self.roles = spbg.ServiceAccountServiceStub(ch), mpbg.RoleServiceStub(ch)
        self.authz = apbg.AuthorizationServiceStub(ch)
        self.n = 0

    # -- helpers ------------------------------------------------------------------------

    def subjects(self) -> list[str]:
        return [f"user:{u}" for u in self.users] + [f"service_account:{s}" for s in self.sas]

    def md(self, subject: str) -> tuple[tuple[str, str], ...]:
        if subject.startswith("user:"):
            return (("x-orgauthz-actor", subject),)
        sa = subject.partition(":")[2]
        key = self.model.keys.get(sa) or self.last_key.get(sa, "pnb_" + "A" * 40)
        return (("x-orgauthz-api-key", key),)

    last_key: dict[str, str]

    def call(self, what: str, fn: Any, req: Any, actor: str, expected: bool) -> Any:
        try:
            resp = fn(req, metadata=self.md(actor), timeout=20)
            ok = True
        except grpc.RpcError as exc:
            assert exc.code() not in (C.INTERNAL, C.UNKNOWN, C.DEADLINE_EXCEEDED), (what, exc.details())  # noqa: PT017  # the status of a refusal, not the refusal itself
            resp, ok = exc, False
        STATS[f"{what} {'allowed' if ok else 'refused'}"] += 1
        detail = "" if ok else f" ({resp.code().name}: {resp.details()})"
        assert ok == expected, (
            f"{what} by {actor}: server {'allowed' if ok else 'refused'}{detail}, model says {expected}"
        )
        return resp if ok else None

    def org_roles(self) -> list[str]:
        return [OWNER, ADMIN, "Member", *(r for r, c in self.model.custom.items() if c.level == "organization")]

    def became(self, actor: str, user: str, role: str) -> None:
        """``user`` now holds ``role``, given by ``actor``: only an Owner makes an Owner (R24),
        only an Owner or Admin an Admin (R8)."""
        if role == OWNER:
            assert self.model.is_owner(actor)
            self.ever_owner.add(user)
        if role in ADMINS:
            assert self.model.is_admin(actor)
            self.ever_admin.add(user)

    # -- operations --------------------------------------------------------------------

    @rule(data=st.data())
    def invite_and_accept(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        role = data.draw(st.sampled_from(self.org_roles()), "role")
        self.n += 1
        user = f"{self.org}-u{self.n}"
        r = self.call(
            "invite",
            self.inv.CreateInvitations,
            ipb.CreateInvitationsRequest(organization=self.org, emails=[f"{user}@x.test"], org_role=role),
            actor,
            self.model.may_invite(actor, role),
        )
        if r is None:
            return
        token = r.results[0].token
        self.call(
            "accept",
            self.inv.AcceptInvitation,
            ipb.AcceptInvitationRequest(token=token, user_id=user, email=f"{user}@X.test"),
            f"user:{user}",
            True,
        )
        self.model.members[user] = role
        self.users.append(user)
        self.became(actor, user, role)

    @rule(data=st.data())
    def change_role(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        user = data.draw(st.sampled_from(self.users), "user")
        role = data.draw(st.sampled_from(self.org_roles()), "role")
        expected = self.model.may_change_role(actor, user, role)
        self.call(
            "change role",
            self.mem.ChangeMemberRole,
            mpb.ChangeMemberRoleRequest(organization=self.org, user_id=user, role=role),
            actor,
            expected,
        )
        if expected:
            if self.model.members[user] != role:
                self.became(actor, user, role)
            self.model.members[user] = role

    @rule(data=st.data())
    def set_access(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        ws = data.draw(st.sampled_from(self.ws), "workspace")
        subject = data.draw(st.sampled_from(self.subjects()), "subject")
        role = data.draw(st.sampled_from(["Viewer", "Developer", "Owner", "Worker", self.cw]), "role")
        before = self.model.grants.get((ws, subject))
        held = before is not None
        if not held:
            may = self.model.may_manage_access(actor, ws, subject, [role])
            expected = may and self.model.in_org(subject)
            self.call(
                "grant",
                self.acc.GrantWorkspaceAccess,
                mpb.GrantWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                actor,
                expected,
            )
            if expected:
                self.model.grants[(ws, subject)] = role
        elif data.draw(st.booleans(), "revoke"):
            may = self.model.may_manage_access(actor, ws, subject, [before])
            self.call(
                "revoke",
                self.acc.RevokeWorkspaceAccess,
                mpb.RevokeWorkspaceAccessRequest(workspace=ws, subject=subject),
                actor,
                may,
            )
            if may:
                del self.model.grants[(ws, subject)]
        else:
            may = self.model.may_manage_access(actor, ws, subject, [before, role])
            self.call(
                "change access",
                self.acc.ChangeWorkspaceAccess,
                mpb.ChangeWorkspaceAccessRequest(workspace=ws, subject=subject, role=role),
                actor,
                may,
            )
            if may:
                self.model.grants[(ws, subject)] = role

    @rule(data=st.data())
    def set_default_role(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        ws = data.draw(st.sampled_from(self.ws), "workspace")
        role = data.draw(st.sampled_from(["", "Viewer", "Runner", "Owner", self.cw]), "role")
        expected = self.model.may_set_default(actor, ws, role)
        self.call(
            "set default role",
            self.wss.SetDefaultRole,
            mpb.SetDefaultRoleRequest(workspace=ws, role=role),
            actor,
            expected,
        )
        if expected:
            self.model.workspaces[ws] = role

    @rule(data=st.data())
    def create_service_account(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        role = data.draw(st.sampled_from(self.org_roles()), "role")
        self.n += 1
        sa = f"{self.org}-sa{self.n}"
        expected = (
            "create:bot" in self.model.permissions(actor)
            and role not in ADMINS
            and self.model.may_give_org_role(actor, role)
            and len(self.model.service_accounts) < self.model.max_service_accounts
        )
        r = self.call(
            "create service account",
            self.sa.CreateServiceAccount,
            spb.CreateServiceAccountRequest(organization=self.org, id=sa, name=sa, org_role=role),
            actor,
            expected,
        )
        if r is not None:
            self.model.service_accounts[sa] = role
            self.model.keys[sa] = r.api_key
            self.sas.append(sa)

    @rule(data=st.data())
    def rotate_key(self, data: st.DataObject) -> None:
        if not self.sas:
            return
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        sa = data.draw(st.sampled_from(self.sas), "service account")
        expected = "update:bot" in self.model.permissions(actor) and sa in self.model.service_accounts
        r = self.call(
            "rotate key",
            self.sa.RotateServiceAccountKey,
            spb.RotateServiceAccountKeyRequest(organization=self.org, id=sa),
            actor,
            expected,
        )
        if r is not None:
            self.retired_keys.append(self.model.keys[sa])
            self.last_key[sa] = self.model.keys[sa] = r.api_key

    @rule(data=st.data())
    def delete_service_account(self, data: st.DataObject) -> None:
        if not self.sas:
            return
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        sa = data.draw(st.sampled_from(self.sas), "service account")
        expected = "delete:bot" in self.model.permissions(actor) and sa in self.model.service_accounts
        if (
            self.call(
                "delete service account",
                self.sa.DeleteServiceAccount,
                spb.DeleteServiceAccountRequest(organization=self.org, id=sa),
                actor,
                expected,
            )
            is not None
        ):
            self.retired_keys.append(self.model.keys[sa])
            self.last_key[sa] = self.model.keys[sa]
            self.model.delete_service_account(sa)

    @rule(data=st.data())
    def remove_member(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        user = data.draw(st.one_of(st.sampled_from(self.users), st.just(actor.partition(":")[2])), "user")
        expected = self.model.may_remove(actor, user)
        self.call(
            "remove member",
            self.mem.RemoveMember,
            mpb.RemoveMemberRequest(organization=self.org, user_id=user),
            actor,
            expected,
        )
        if expected:
            self.model.remove(user)

    @rule(data=st.data())
    def update_custom_role(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        role = data.draw(st.sampled_from(sorted(self.model.custom)), "role")
        level = self.model.custom[role].level
        pool = sorted(ORG_PERMISSIONS) if level == "organization" else sorted(WS_SCOPES)
        scopes = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique=True), "scopes")
        # R28: only Owners and Admins define or change custom roles, whatever permissions
        permission = "update:workspace_role" if level == "workspace" else "update:account_role"
        expected = permission in self.model.permissions(actor) and self.model.is_admin(actor)
        expected = expected and not OWNERS_ONLY & set(scopes)  # R24: no custom role holds them
        self.n += 1  # role names are unique in an organization
        self.call(
            "update role",
            self.roles.UpdateRole,
            mpb.UpdateRoleRequest(organization=self.org, role=role, name=f"r{self.n}", scopes=scopes),
            actor,
            expected,
        )
        if expected:
            self.model.custom[role].scopes = sorted(scopes)

    @rule(data=st.data())
    def create_custom_role(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.subjects()), "actor")
        scopes = data.draw(
            st.lists(st.sampled_from(sorted(ORG_PERMISSIONS)), min_size=1, max_size=6, unique=True), "scopes"
        )
        self.n += 1
        rid = f"{self.org}-role{self.n}"
        expected = "create:account_role" in self.model.permissions(actor) and self.model.is_admin(actor)
        expected = expected and not OWNERS_ONLY & set(scopes)  # R24: no custom role holds them
        self.call(
            "create role",
            self.roles.CreateRole,
            mpb.CreateRoleRequest(
                organization=self.org, id=rid, name=rid, level="organization", inherits="Member", scopes=scopes
            ),
            actor,
            expected,
        )
        if expected:
            self.model.custom[rid] = CustomRole("organization", "Member", sorted(scopes))

    # -- after every step --------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        app = self.server.app
        with app.db.read() as s:
            members = dict(
                s.execute(select(Membership.user_id, Membership.org_role).where(Membership.org_id == self.org)).all()
            )
            sas = dict(
                s.execute(
                    select(ServiceAccount.id, ServiceAccount.org_role).where(ServiceAccount.org_id == self.org)
                ).all()
            )
            grants = {
                (w, sub): r
                for w, sub, r in s.execute(
                    select(WorkspaceGrant.workspace_id, WorkspaceGrant.subject, WorkspaceGrant.role).where(
                        WorkspaceGrant.org_id == self.org
                    )
                ).all()
            }
        assert members == self.model.members
        assert sas == self.model.service_accounts
        assert not set(ADMINS) & set(sas.values())  # R11
        assert grants == self.model.grants
        admins = {u for u, r in members.items() if r in ADMINS}
        owners = {u for u, r in members.items() if r == OWNER}
        assert admins <= self.ever_admin  # nobody became Owner or Admin but through one (R8)
        assert owners <= self.ever_owner  # nobody became Owner but through an Owner (R24)
        assert owners  # R3: the last Owner stays

    @invariant()
    def decisions_match_model(self) -> None:
        items, expected = [], []
        for subject in self.subjects():
            for ws in self.ws:
                for scope in SAMPLE_SCOPES:
                    items.append(apb.CheckRequest(subject=subject, workspace=ws, scope=scope))
                    expected.append(scope in self.model.scopes(subject, ws))
            for perm in sorted(ORG_PERMISSIONS):
                items.append(apb.CheckRequest(subject=subject, organization=self.org, scope=perm))
                expected.append(perm in self.model.permissions(subject))
        got = []
        for i in range(0, len(items), 1000):
            r = self.authz.BatchCheck(apb.BatchCheckRequest(items=items[i : i + 1000]), timeout=20)
            got += [x.allowed for x in r.results]
        STATS["decisions checked"] += len(items)
        wrong = [
            (items[i].subject, items[i].workspace or items[i].organization, items[i].scope, got[i])
            for i in range(len(items))
            if got[i] != expected[i]
        ]
        assert not wrong, f"decisions differ from the model (subject, target, scope, server): {wrong[:8]}"

    @invariant()
    def keys_work_until_rotated_or_deleted(self) -> None:
        for sa, k in self.model.keys.items():
            r = self.authz.Authenticate(apb.AuthenticateRequest(api_key=k), timeout=10)
            assert r.service_account == sa
        for k in self.retired_keys[-3:]:
            with pytest.raises(grpc.RpcError) as err:
                self.authz.Authenticate(apb.AuthenticateRequest(api_key=k), timeout=10)
            assert err.value.code() == C.UNAUTHENTICATED

    def teardown(self) -> None:
        STATS["sequences"] += 1


def test_no_sequence_of_calls_escalates_privileges(server: ServerThread) -> None:
    class Machine(Escalation):
        pass

    Machine.server = server
    Machine.last_key = {}
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=scaled(15),
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(
        f"\n[escalation] {STATS['sequences']} operation sequences, "
        f"{sum(v for k, v in STATS.items() if k.endswith(('allowed', 'refused')))} operations, "
        f"{STATS['decisions checked']} decisions compared with the model: {dict(sorted(STATS.items()))}"
    )
