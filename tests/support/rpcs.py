"""What the bad-input, fault and security tests share: every RPC from the generated
descriptors, a generic caller, a fingerprint of the whole store, a two-organization world
(documents in tests/support/orgs.py), and the test scale.

``ORGAUTHZ_TEST_SCALE`` (default 1) multiplies hypothesis examples and race rounds, so a
longer local run (``ORGAUTHZ_TEST_SCALE=10 pytest tests/bad_input tests/faults tests/security``)
explores more without slowing CI.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from sqlalchemy import inspect, text

import orgauthz.v1 as v1
from orgauthz.store.base import Store
from tests.support.orgs import org_doc

SCALE = max(1, int(os.environ.get("ORGAUTHZ_TEST_SCALE", "1")))
C = grpc.StatusCode

# The statuses SPEC §2/§4 documents for a request a caller may send.
DOCUMENTED = frozenset(
    {
        C.OK,
        C.INVALID_ARGUMENT,
        C.NOT_FOUND,
        C.PERMISSION_DENIED,
        C.UNAUTHENTICATED,
        C.FAILED_PRECONDITION,
        C.ALREADY_EXISTS,
        C.RESOURCE_EXHAUSTED,
        C.ABORTED,  # SetAcl/ClearAcl with a stale expected_revision (R26)
    }
)


def scaled(n: int) -> int:
    return n * SCALE


# -- every RPC, from the descriptors ---------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    service: str  # full name: orgauthz.v1.WorkspaceService
    name: str
    descriptor: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def short(self) -> str:
        return f"{self.service.rpartition('.')[2]}.{self.name}"

    @property
    def input(self) -> Descriptor:
        return self.descriptor.input_type

    def request_class(self) -> Any:
        return message_factory.GetMessageClass(self.descriptor.input_type)

    def response_class(self) -> Any:
        return message_factory.GetMessageClass(self.descriptor.output_type)


def all_rpcs() -> list[Rpc]:
    """Every RPC of every service in the generated ``orgauthz.v1`` modules (a new one is picked up)."""
    out: list[Rpc] = []
    for mod in pkgutil.iter_modules(v1.__path__):
        if not mod.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"orgauthz.v1.{mod.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            out += [Rpc(service.full_name, m.name, m) for m in service.methods]
    return sorted(out, key=lambda r: r.path)


MANAGEMENT = [r for r in all_rpcs() if not r.service.endswith("AuthorizationService")]


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Any = None


async def call(
    channel: grpc.aio.Channel,
    rpc: Rpc,
    request: Any,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float = 10.0,  # noqa: ASYNC109  # the gRPC deadline, not a wait
) -> Outcome:
    """Calls ``rpc`` by path; a hang shows as DEADLINE_EXCEEDED (never a documented status)."""
    method = channel.unary_unary(
        rpc.path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=rpc.response_class().FromString,
    )
    try:
        resp = await method(request, metadata=tuple(metadata), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code(), exc.details() or "")
    return Outcome(C.OK, "", resp)


# -- the store's fingerprint -----------------------------------------------------------------


def table_rows(db: Store, *, org_ids: set[str] | None = None) -> dict[str, list[str]]:
    """Every row of every table, as sorted reprs; with ``org_ids``, only rows that name one of them."""
    out: dict[str, list[str]] = {}
    with db.engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            rows = [repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))]
            if org_ids is not None:
                rows = [r for r in rows if any(f"'{o}'" in r for o in org_ids)]
            out[table] = sorted(rows)
    return out


def fingerprint(db: Store, *, org_ids: set[str] | None = None) -> tuple[int, str]:
    """(head revision, SHA-256 over all tables): equal before and after means nothing changed."""
    rows = table_rows(db, org_ids=org_ids)
    with db.engine.connect() as conn:
        head = conn.execute(text("SELECT COALESCE(MAX(revision), 0) FROM changes")).scalar() or 0
    digest = hashlib.sha256()
    for table, lines in rows.items():
        digest.update(table.encode())
        for line in lines:
            digest.update(line.encode())
    return int(head), digest.hexdigest()


def dump(db: Store) -> str:
    return "\n".join(f"{t}: {r}" for t, rows in table_rows(db).items() for r in rows)


# -- a two-organization world ------------------------------------------------------------------


def actor(user: str) -> list[tuple[str, str]]:
    return [("x-orgauthz-actor", f"user:{user}")]


def key(api_key: str) -> list[tuple[str, str]]:
    return [("x-orgauthz-api-key", api_key)]


@dataclass
class OrgWorld:
    """What exists in one organization, with the secrets only the test knows."""

    id: str
    users: list[str]
    workspaces: list[str]
    roles: list[str]
    service_accounts: dict[str, str] = field(default_factory=dict)  # id -> API key
    user_keys: dict[str, str] = field(default_factory=dict)  # id -> the admin's personal API key (R29)
    invitations: dict[str, str] = field(default_factory=dict)  # id -> token
    invitation_emails: dict[str, str] = field(default_factory=dict)  # id -> email

    @property
    def subjects(self) -> list[str]:
        return [f"user:{u}" for u in self.users] + [f"service_account:{s}" for s in self.service_accounts]

    def ids(self) -> list[str]:
        """Every id of the organization a request could name."""
        return [
            self.id,
            *self.users,
            *self.workspaces,
            *self.roles,
            *self.service_accounts,
            *self.invitations,
            *self.user_keys,
        ]


async def build_world(
    app: Any,
    channel: grpc.aio.Channel,
    policy: Any,
    orgs: Sequence[str] = ("a", "b"),
) -> dict[str, OrgWorld]:
    """Seeds each organization, then creates a service account with a key, two personal API
    keys of its admin and two pending invitations through the API (so the keys and tokens
    are real)."""
    from orgauthz.store.importer import import_document
    from orgauthz.v1 import invitations_pb2 as ipb
    from orgauthz.v1 import invitations_pb2_grpc as ipbg
    from orgauthz.v1 import service_accounts_pb2 as spb
    from orgauthz.v1 import service_accounts_pb2_grpc as spbg
    from orgauthz.v1 import user_api_keys_pb2 as upb
    from orgauthz.v1 import user_api_keys_pb2_grpc as upbg

    rev = import_document(app.db, policy, {"organizations": [org_doc(o) for o in orgs]}).revision
    await app.feed.wait_for(rev, 10)
    worlds: dict[str, OrgWorld] = {}
    sas, invites = spbg.ServiceAccountServiceStub(channel), ipbg.InvitationServiceStub(channel)
    for o in orgs:
        doc = org_doc(o)
        w = OrgWorld(
            id=o,
            users=[m["user"] for m in doc["members"]],
            workspaces=[x["id"] for x in doc["workspaces"]],
            roles=[r["id"] for r in doc["custom_roles"]],
        )
        for name in ("bot", "ci"):
            r = await sas.CreateServiceAccount(
                spb.CreateServiceAccountRequest(organization=o, id=f"{o}-sa-{name}", name=name),
                metadata=actor(f"{o}-admin"),
            )
            w.service_accounts[r.service_account.id] = r.api_key
        for name in ("laptop", "ci"):
            k = await upbg.UserApiKeyServiceStub(channel).CreateUserApiKey(
                upb.CreateUserApiKeyRequest(user_id=f"{o}-admin", name=name), metadata=actor(f"{o}-admin")
            )
            w.user_keys[k.key.id] = k.api_key
        r2 = await invites.CreateInvitations(
            ipb.CreateInvitationsRequest(organization=o, emails=[f"new1@{o}.test", f"new2@{o}.test"]),
            metadata=actor(f"{o}-admin"),
        )
        for res in r2.results:
            w.invitations[res.invitation.id] = res.token
            w.invitation_emails[res.invitation.id] = res.invitation.email
        worlds[o] = w
    return worlds
