"""SPEC §4 bad input, over every RPC of every service (enumerated from the descriptors, so a
new RPC is covered without touching this file), on SQLite and PostgreSQL:

- any request, with any actor metadata, ends with a documented status: never INTERNAL,
  UNKNOWN, a crash or a hang (each call has a deadline);
- a request that is refused changes nothing in the store: the head revision and a
  checksum over every row of every table are the same before and after;
- a request above ``max_message_bytes`` is refused by gRPC with RESOURCE_EXHAUSTED;
- every text field (names, descriptions, emails; in every RPC and in ``orgauthz import``)
  refuses control and invisible formatting characters, naming the field;
- every list refuses a page token it did not issue, naming ``page_token``.

UNAVAILABLE is accepted only for a read carrying a ``min_revision`` ahead of the store
(SPEC §3: "fail retryably"), answered after ``min_revision_wait_s``.
"""

from __future__ import annotations

import base64
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet
from orgauthz.store.base import Store
from orgauthz.v1 import management_pb2 as pb
from tests.bad_input import fuzz
from tests.conftest import settings_for
from tests.support.orgs import org_doc
from tests.support.rpcs import (
    DOCUMENTED,
    C,
    OrgWorld,
    all_rpcs,
    build_world,
    call,
    fingerprint,
    scaled,
)

RPCS = all_rpcs()
MAX_MESSAGE = 256 * 1024
TRIED: Counter[str] = Counter()
CODES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(
        f"\n[bad input] {sum(TRIED.values())} requests over {len(TRIED)} RPCs (x databases); "
        f"statuses: {dict(CODES.most_common())}"
    )


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[App]:
    server = App(settings_for(store_url, max_message_bytes=MAX_MESSAGE, min_revision_wait_s=0.05))
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
async def world(app: App, channel: grpc.aio.Channel, policy: PolicySet) -> dict[str, OrgWorld]:
    return await build_world(app, channel, policy)


def metadata(world: dict[str, OrgWorld]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Mostly real actors and keys of organization A (so calls reach the services), else no
    actor, actors of B or nobody, and malformed headers."""
    a = world["a"]
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
    users = [f"user:{u}" for u in a.users] + ["user:nobody", "user:b-admin"]
    keys = [*a.service_accounts.values(), *a.user_keys.values(), "pnb_" + "A" * 40, "pnu_" + "A" * 40, "pnb_x"]
    keys.append("pnb_" + "A" * 300)
    valid = st.sampled_from(
        [
            [("x-orgauthz-actor", "user:a-admin")],
            [("x-orgauthz-actor", "user:a-member")],
            [("x-orgauthz-actor", "user:a-owner")],
            [("x-orgauthz-actor", "user:a-manager")],
            [("x-orgauthz-api-key", a.service_accounts["a-sa-bot"])],
            [("x-orgauthz-api-key", next(iter(a.user_keys.values())))],
        ]
    )
    hostile = st.one_of(
        st.just([]),
        st.sampled_from(users).map(lambda u: [("x-orgauthz-actor", u)]),
        st.sampled_from(keys).map(lambda k: [("x-orgauthz-api-key", k)]),
        printable.map(lambda v: [("x-orgauthz-actor", v)]),
        printable.map(lambda v: [("x-orgauthz-api-key", v)]),
        st.tuples(st.sampled_from(users), st.sampled_from(keys)).map(
            lambda t: [("x-orgauthz-actor", t[0]), ("x-orgauthz-api-key", t[1])]
        ),
        st.sampled_from(["service_account:a-sa-bot", "user", "user:", "platform", "user:a-admin,user:b-admin"]).map(
            lambda u: [("x-orgauthz-actor", u)]
        ),
    )
    return st.integers(0, 9).flatmap(lambda k: valid if k < 6 else hostile)


def acceptable(code: grpc.StatusCode, values: dict[str, object]) -> bool:
    return code in DOCUMENTED or (code == C.UNAVAILABLE and fuzz.has_min_revision(values))


@settings(
    max_examples=scaled(10),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_s4_any_request_gets_a_documented_status_and_a_refused_one_changes_nothing(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld], data: DataObject
) -> None:
    """Each example sends one generated request to every RPC, in a generated order."""
    assert app.db is not None
    for rpc in data.draw(st.permutations(RPCS), label="order"):
        values = data.draw(fuzz.message(rpc.input, world), label=rpc.short)
        md = data.draw(metadata(world), label="metadata")
        request = fuzz.fill(rpc.request_class()(), values)
        before = fingerprint(app.db)
        out = await call(channel, rpc, request, md, timeout=15)
        TRIED[rpc.short] += 1
        CODES[out.code.name] += 1
        assert acceptable(out.code, values), f"{rpc.short} answered {out.code.name}: {out.details!r}"
        assert "Traceback" not in out.details and "sqlalchemy" not in out.details.lower(), out.details  # noqa: PT018  # one invariant, two words for it
        if out.code != C.OK:
            assert fingerprint(app.db) == before, f"{rpc.short} refused with {out.code.name} but changed the store"


def _padded(size: int) -> bytes:
    """An empty request followed by one unknown length-delimited field (number 1000) of ``size`` bytes:
    any request message parses it, so the size limit is what decides."""
    tag = bytes([0xC2, 0x3E])  # (1000 << 3) | 2 as a varint
    n, length = size, bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return tag + bytes(length) + b"x" * size


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # gRPC's limit; the store plays no part
async def test_s4_messages_above_max_message_bytes_are_refused(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    assert app.db is not None
    before = fingerprint(app.db)
    for rpc in RPCS:
        method = channel.unary_unary(rpc.path, response_deserializer=rpc.response_class().FromString)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await method(_padded(MAX_MESSAGE + 1), metadata=(("x-orgauthz-actor", "user:a-admin"),), timeout=15)
        TRIED[rpc.short] += 1
        assert err.value.code() == C.RESOURCE_EXHAUSTED, (rpc.short, err.value.code(), err.value.details())
        # A padded request under the limit is parsed (the unknown field ignored) and answered.
        method_ok = channel.unary_unary(rpc.path, response_deserializer=rpc.response_class().FromString)
        try:
            await method_ok(_padded(MAX_MESSAGE - 1024), metadata=(("x-orgauthz-actor", "user:a-admin"),), timeout=15)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in DOCUMENTED, (rpc.short, exc.code(), exc.details())  # noqa: PT017  # any refusal is fine if documented
        TRIED[rpc.short] += 1
    assert fingerprint(app.db) == before
    check = next(r for r in RPCS if r.short == "AuthorizationService.Check")
    ok = await call(channel, check, check.request_class()(subject="user:a-admin", workspace="a-ws1", scope="see_flows"))
    assert ok.code == C.OK
    assert ok.response.allowed


def _undecodable(rpc_input: Any) -> list[bytes]:
    """Bytes that are no encoding of any message, and one whose first string field holds bad UTF-8."""
    out = [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08"]  # bad tag, a length past the end, a missing varint
    strings = [f for f in rpc_input.fields if f.type == f.TYPE_STRING]
    if strings:
        out.append(bytes([(strings[0].number << 3) | 2, 1, 0xFF]))
    return out


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # decoding happens before the store
async def test_s4_bytes_that_do_not_decode_are_invalid_argument_naming_the_request(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    """gRPC itself answers UNKNOWN when a request does not decode; every method here says
    INVALID_ARGUMENT and names ``request``, health and reflection included."""
    assert app.db is not None
    before = fingerprint(app.db)
    actor = (("x-orgauthz-actor", "user:a-admin"),)
    for rpc in RPCS:
        method = channel.unary_unary(rpc.path, request_serializer=bytes, response_deserializer=bytes)
        for raw in _undecodable(rpc.input):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await method(raw, metadata=actor, timeout=10)
            TRIED[rpc.short] += 1
            assert err.value.code() == C.INVALID_ARGUMENT, (rpc.short, raw, err.value.code(), err.value.details())
            assert (err.value.details() or "").startswith("request: not a valid encoding"), (rpc.short, raw)
    health = health_pb2.HealthCheckRequest.DESCRIPTOR
    for raw in _undecodable(health):
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check(raw, timeout=10)
        assert err.value.code() == C.INVALID_ARGUMENT, (raw, err.value.code(), err.value.details())
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in watch(raw, timeout=10):
                pass
        assert err.value.code() == C.INVALID_ARGUMENT, (raw, err.value.code(), err.value.details())
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", request_serializer=bytes
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in reflect(iter([raw]), timeout=10):
                pass
        assert err.value.code() == C.INVALID_ARGUMENT, (raw, err.value.code(), err.value.details())
    assert fingerprint(app.db) == before
    # Everything still answers afterwards.
    check = next(r for r in RPCS if r.short == "AuthorizationService.Check")
    ok = await call(channel, check, check.request_class()(subject="user:a-admin", workspace="a-ws1", scope="see_flows"))
    assert ok.code == C.OK
    assert ok.response.allowed


def test_every_service_and_rpc_is_enumerated() -> None:
    services = {r.service for r in RPCS}
    assert {
        "orgauthz.v1.AuthorizationService",
        "orgauthz.v1.OrganizationService",
        "orgauthz.v1.WorkspaceService",
        "orgauthz.v1.MemberService",
        "orgauthz.v1.AccessService",
        "orgauthz.v1.RoleService",
        "orgauthz.v1.AuditService",
        "orgauthz.v1.InvitationService",
        "orgauthz.v1.ServiceAccountService",
        "orgauthz.v1.UserApiKeyService",
        "orgauthz.v1.TeamService",
    } <= services
    assert len(RPCS) >= 41


# -- text fields (SPEC §4: no control or invisible formatting character) ---------------------

# At least one character of each class SPEC §4 names; every text field refuses each one.
REFUSED_CHARACTERS: dict[str, list[str]] = {
    "C0": ["\x00", "\x01", "\x0d", "\x1b", "\x1c", "\x1f"],
    "DEL": ["\x7f"],
    "C1": ["\x80", "\x85", "\x9b", "\x9f"],
    "bidirectional": ["\u061c", "\u200e", "\u200f", "\u202a", "\u202d", "\u202e", "\u2066", "\u2069"],
    "zero-width and invisible": [
        "\u00ad",
        "\u180e",
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\u2064",
        "\ufeff",
        "\u3164",
        "\U000e0041",
    ],
    "line and paragraph separators": ["\u2028", "\u2029"],
}
TEXT_FIELDS = frozenset({"name", "description", "email", "emails", "admin_email"})
# Every other string field of a request follows an ASCII grammar (ids, handles, subjects,
# scopes, levels, event names, tokens, keys) checked on its own.
STRUCTURED_FIELDS = frozenset(
    {
        "actor",
        "admin_user_id",
        "api_key",
        "default_role",
        "event",
        "handle",
        "id",
        "inherits",
        "kind",
        "level",
        "object",
        "deployment",
        "work_pool",
        "org_role",
        "organization",
        "page_token",
        "role",
        "scope",
        "scopes",
        "subject",
        "subjects",
        "token",
        "user_id",
        "workspace",
    }
)
ADMIN = (("x-orgauthz-actor", "user:a-admin"),)
OWNER = (("x-orgauthz-actor", "user:a-owner"),)


def _string_fields(rpc: Any) -> set[str]:
    return {f.name for f in rpc.input.fields if f.type == f.TYPE_STRING}


def _text_request(short: str, n: int, world: dict[str, OrgWorld]) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """A request to ``short`` that succeeds as it stands (``n`` keeps handles and names
    unique), and the metadata to send it with."""
    tokens = list(world["a"].invitations.values())
    bases: dict[str, tuple[dict[str, Any], tuple[tuple[str, str], ...]]] = {
        "OrganizationService.CreateOrganization": (
            {"handle": f"t{n}", "name": f"Org {n}", "admin_user_id": f"t{n}-admin", "admin_email": f"t{n}@t.test"},
            ADMIN,
        ),
        "OrganizationService.UpdateOrganization": ({"organization": "a", "name": f"Org {n}"}, ADMIN),
        "WorkspaceService.CreateWorkspace": (
            {"organization": "a", "handle": f"t{n}", "name": f"Space {n}", "description": "what it is for"},
            ADMIN,
        ),
        "WorkspaceService.UpdateWorkspace": (
            {"workspace": "a-ws1", "name": f"Space {n}", "description": "what it is for"},
            ADMIN,
        ),
        "ServiceAccountService.CreateServiceAccount": ({"organization": "a", "name": f"robot {n}"}, ADMIN),
        "ServiceAccountService.UpdateServiceAccount": (
            {"organization": "a", "id": "a-sa-ci", "name": f"robot ci {n}"},
            ADMIN,
        ),
        "UserApiKeyService.CreateUserApiKey": ({"user_id": "a-owner", "name": f"laptop {n}"}, OWNER),
        "TeamService.CreateTeam": ({"organization": "a", "name": f"Team {n}", "description": "what it does"}, ADMIN),
        "TeamService.UpdateTeam": (
            {"organization": "a", "id": "a-team2", "name": f"Data {n}", "description": "what it does"},
            ADMIN,
        ),
        "RoleService.CreateRole": (
            {
                "organization": "a",
                "name": f"Role {n}",
                "level": "workspace",
                "scopes": ["see_flows"],
                "description": "what it is for",
            },
            ADMIN,
        ),
        "RoleService.UpdateRole": (
            {
                "organization": "a",
                "role": "a-wsrole",
                "name": f"Deployer {n}",
                "scopes": ["run_deployments"],
                "description": "what it is for",
            },
            ADMIN,
        ),
        "InvitationService.CreateInvitations": ({"organization": "a", "emails": [f"t{n}@a.test"]}, ADMIN),
        "InvitationService.AcceptInvitation": (
            {"token": tokens[0], "user_id": "a-new1", "email": "new1@a.test"},
            (("x-orgauthz-actor", "user:a-new1"),),
        ),
        "InvitationService.RejectInvitation": (
            {"token": tokens[1], "user_id": "a-new2", "email": "new2@a.test"},
            (("x-orgauthz-actor", "user:a-new2"),),
        ),
    }
    return bases[short]


def _with_text(field: str, good: str, c: str) -> list[str]:
    """``good`` with ``c`` at its start, inside and at its end (an email: of its local part),
    so trimming cannot hide it."""
    local, at, domain = good.partition("@") if "email" in field else (good, "", "")
    return [f"{c}{local}{at}{domain}", f"{local[:1]}{c}{local[1:]}{at}{domain}", f"{local}{c}{at}{domain}"]


def test_s4_every_string_field_is_either_text_or_structured() -> None:
    """A new string field is classified here; a new text field then needs a request in
    :func:`_text_request` before the next test passes."""
    for rpc in RPCS:
        unknown = _string_fields(rpc) - TEXT_FIELDS - STRUCTURED_FIELDS
        assert not unknown, f"{rpc.short}: classify {sorted(unknown)} as text or structured"


async def test_s4_text_fields_refuse_control_and_invisible_formatting_characters(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    """Names, descriptions and emails on every RPC that takes them: each refused character,
    at the start, inside or at the end, is INVALID_ARGUMENT naming the field (in
    CreateInvitations an ERROR result naming ``emails[0]``), and nothing is written. The
    same requests with plain text are then accepted."""
    assert app.db is not None
    texts = [(rpc, f) for rpc in RPCS for f in sorted(_string_fields(rpc) & TEXT_FIELDS)]
    assert {rpc.short for rpc, _ in texts} >= {
        "OrganizationService.CreateOrganization",
        "OrganizationService.UpdateOrganization",
        "WorkspaceService.CreateWorkspace",
        "WorkspaceService.UpdateWorkspace",
        "ServiceAccountService.CreateServiceAccount",
        "ServiceAccountService.UpdateServiceAccount",
        "UserApiKeyService.CreateUserApiKey",
        "TeamService.CreateTeam",
        "TeamService.UpdateTeam",
        "RoleService.CreateRole",
        "RoleService.UpdateRole",
    }
    n = 0
    before = fingerprint(app.db)
    taken: list[str] = []
    for rpc, field in texts:
        for kind, characters in REFUSED_CHARACTERS.items():
            for c in characters:
                n += 1
                values, md = _text_request(rpc.short, n, world)
                good = values[field][0] if field == "emails" else values[field]
                for bad in _with_text(field, good, c):
                    values[field] = [bad] if field == "emails" else bad
                    out = await call(channel, rpc, rpc.request_class()(**values), md)
                    TRIED[rpc.short] += 1
                    if field == "emails":
                        results = out.response.results if out.code == C.OK else []
                        refused = [r.error.partition(":")[0] for r in results] == ["emails[0]"]
                        refused = refused and out.response.revision == 0
                        answer = f"{out.code.name} {[r.error for r in results]}"
                    else:
                        refused = out.code == C.INVALID_ARGUMENT and out.details.startswith(f"{field}:")
                        answer = f"{out.code.name} {out.details!r}"
                    after = fingerprint(app.db)
                    if not refused or after != before:
                        wrote = ", and wrote" if after != before else ""
                        taken.append(f"{rpc.short}.{field} ({kind}) {bad!a}: {answer}{wrote}")
                        before = after
    assert not taken, f"{len(taken)} not refused:\n" + "\n".join(taken)
    for rpc in {rpc.short: rpc for rpc, _ in texts}.values():
        n += 1
        values, md = _text_request(rpc.short, n, world)
        out = await call(channel, rpc, rpc.request_class()(**values), md)
        assert out.code == C.OK, (rpc.short, out.code, out.details)


def test_s4_text_rule_refuses_every_control_format_and_separator_code_point() -> None:
    """Over all of Unicode: every code point of categories Cc, Cf, Zl and Zp is refused by
    every kind of text field (descriptions alone keep tab and newline), inside a value."""
    from orgauthz.domain import bounds
    from orgauthz.errors import InvalidArgument

    def takes(check: Callable[[str, str], str], value: str) -> bool:
        try:
            check("field", value)
        except InvalidArgument as exc:
            return exc.field != "field"
        return True

    refused = [chr(i) for i in range(0x110000) if unicodedata.category(chr(i)) in ("Cc", "Cf", "Zl", "Zp")]
    assert len(refused) >= 230
    accepted: list[str] = []
    for c in refused:
        for check, value in (
            (bounds.check_name, f"a{c}b"),
            (bounds.check_email, f"a{c}b@a.test"),
            (bounds.check_description, f"a{c}b"),
        ):
            if takes(check, value):
                accepted.append(f"{check.__name__} U+{ord(c):04X}")
    assert not accepted, f"{len(accepted)} accepted: {accepted[:20]}"
    # Visible text is untouched: letters of any script, emoji, punctuation, inner spaces.
    for fine in ("Prod", "Produktion", "Продакшн", "本番", "شركة", "🚀 launch", "R&D — team 2", "Ünïcödé"):
        assert bounds.check_name("name", fine) == fine
        assert bounds.check_description("description", fine) == fine


@pytest.mark.parametrize(
    ("path", "edit"),
    [
        ("organizations[0].name", lambda o, v: o.update(name=v)),
        ("organizations[0].workspaces[0].name", lambda o, v: o["workspaces"][0].update(name=v)),
        ("organizations[0].service_accounts[0].name", lambda o, v: o.update(service_accounts=[{"id": "s", "name": v}])),
        ("organizations[0].custom_roles[0].name", lambda o, v: o["custom_roles"][0].update(name=v)),
        ("organizations[0].custom_roles[0].description", lambda o, v: o["custom_roles"][0].update(description=v)),
        (
            "organizations[0].members[0].email",
            lambda o, v: o["members"][0].update(email=v + "@t.test"),
        ),
    ],
    ids=["org-name", "workspace-name", "service-account-name", "role-name", "role-description", "member-email"],
)
def test_s4_import_refuses_control_and_invisible_formatting_characters(
    db: Store, policy: PolicySet, path: str, edit: Callable[[dict[str, Any], str], None]
) -> None:
    """``orgauthz import`` holds its text fields to the same rule, naming the path; nothing is written."""
    from orgauthz.errors import InvalidArgument
    from orgauthz.store.importer import import_document

    before = fingerprint(db)
    for kind, characters in REFUSED_CHARACTERS.items():
        for c in characters:
            org = org_doc("i")
            edit(org, f"Prod{c}uction")
            with pytest.raises(InvalidArgument) as refused:
                import_document(db, policy, {"organizations": [org]})
            assert refused.value.field == path, (kind, f"U+{ord(c):04X}", refused.value)
            assert fingerprint(db) == before, (kind, f"U+{ord(c):04X}")
    org = org_doc("i")
    edit(org, "Production")
    assert import_document(db, policy, {"organizations": [org]}).revision == 1


# -- page tokens (SPEC §4: a token the server did not issue is refused on every list) --------

LISTS = [r for r in RPCS if "page_token" in r.input.fields_by_name]


def _list_request(rpc: Any, page_token: str) -> Any:
    """A first (or later) page of one item, in organization A."""
    fields = rpc.input.fields_by_name
    values: dict[str, Any] = {"page_size": 1, "page_token": page_token}
    if "organization" in fields:
        values["organization"] = "a"
    elif "workspace" in fields:
        values["workspace"] = "a-ws1"
    if "subject" in fields:
        values["subject"] = "user:a-member"
    if "user_id" in fields:
        values["user_id"] = "a-admin"  # the actor's own keys
    if "id" in fields:
        values["id"] = "a-team1"  # ListTeamMembers: a team of two
    return rpc.request_class()(**values)


def _forged(issued: str) -> list[str]:
    """Tokens no list issued: short and long runs of base64, ``issued`` altered, cut or
    extended, and base64 of the keys lists resume after (ids, handles, role and scope keys,
    revisions)."""
    i = len(issued) // 2
    altered = issued[:i] + ("B" if issued[i] == "A" else "A") + issued[i + 1 :]
    keys = ["a-ws1", "prod", "a-admin", "user:a-member", "0:Admin", "1:a-wsrole", "0:see_flows", "3", "a\x00a-ws1"]
    return [
        "AAAA",
        "A" * 600,
        "A" * 512,
        altered,
        issued[:-4] or issued[:-1],
        issued + "AAAA",
        issued + "!",
        *(base64.urlsafe_b64encode(k.encode()).decode() for k in keys),
    ]


async def test_s4_every_list_refuses_a_page_token_it_did_not_issue(
    app: App, channel: grpc.aio.Channel, world: dict[str, OrgWorld]
) -> None:
    """Every RPC with a ``page_token`` (from the descriptors): the token it issued is taken;
    forged, altered, cut or extended ones are INVALID_ARGUMENT naming ``page_token``."""
    assert app.db is not None
    assert {r.short for r in LISTS} >= {
        "AuthorizationService.ListAccessibleWorkspaces",
        "OrganizationService.ListMyOrganizations",
        "WorkspaceService.ListWorkspaces",
        "MemberService.ListMembers",
        "AccessService.ListWorkspaceAccess",
        "RoleService.ListRoles",
        "RoleService.ListScopes",
        "AuditService.ListAuditEvents",
        "InvitationService.ListInvitations",
        "ServiceAccountService.ListServiceAccounts",
        "UserApiKeyService.ListUserApiKeys",
        "TeamService.ListTeams",
        "TeamService.ListTeamMembers",
    }
    # The actor's own organizations (ListMyOrganizations) need a second page: a-admin founds one more.
    founded = await call(
        channel,
        next(r for r in RPCS if r.short == "OrganizationService.CreateOrganization"),
        pb.CreateOrganizationRequest(id="a2", handle="a2", name="A2", admin_user_id="a-admin"),
    )
    assert founded.code == C.OK, founded.details
    before = fingerprint(app.db)
    taken: list[str] = []
    for rpc in LISTS:
        first = await call(channel, rpc, _list_request(rpc, ""), ADMIN)
        assert first.code == C.OK, (rpc.short, first.code, first.details)
        issued = first.response.next_page_token
        assert issued, f"{rpc.short}: no second page to resume"
        second = await call(channel, rpc, _list_request(rpc, issued), ADMIN)
        assert second.code == C.OK, (rpc.short, second.code, second.details)
        for forged in _forged(issued):
            out = await call(channel, rpc, _list_request(rpc, forged), ADMIN)
            TRIED[rpc.short] += 1
            if out.code != C.INVALID_ARGUMENT or not out.details.startswith("page_token:"):
                taken.append(f"{rpc.short} page_token={forged[:40]!r}: {out.code.name} {out.details!r}")
    assert not taken, f"{len(taken)} forged tokens not refused:\n" + "\n".join(taken)
    assert fingerprint(app.db) == before
