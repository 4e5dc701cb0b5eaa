"""Bad input on every field of every AuthorizationService request (SPEC §4).

Whatever arrives, the answer is INVALID_ARGUMENT naming a field that is out of bounds, or,
for well-formed ids that name nothing, a plain deny; never INTERNAL or UNKNOWN, and nothing
is written. The expected outcome is worked out here from the documented bounds: ids are
1-128 characters of letters, digits and ``._:@-``; subjects are ``user:<id>`` or
``service_account:<id>``; a target is a workspace or an organization; the scope must be in
the catalog at the target's level; at most 1,000 batch items; page sizes up to 1,000.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgauthz.api.server import App
from orgauthz.domain.policy import PolicySet, load_policy
from orgauthz.store import snapshots
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc
from tests.conftest import settings_for
from tests.support.orgs import ACME_SMALL, doc, seed

POLICY = load_policy()
WS_SCOPES = sorted(POLICY.workspace_scopes)
ORG_PERMS = sorted(POLICY.organization_permissions)
ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,128}")

DOC = doc(ACME_SMALL)
KNOWN_IDS = ["alice", "bob", "ci-bot", "acme", "acme-prod", "acme-dev"]

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Server:
    app: App
    stub: authorization_pb2_grpc.AuthorizationServiceStub
    channel: grpc.aio.Channel
    revision: int


@pytest.fixture
async def server(store_url: str, policy: PolicySet) -> AsyncIterator[Server]:
    """A seeded server that gives up at once on a min_revision it has not reached."""
    app = App(settings_for(store_url, min_revision_wait_s=0.0))
    await app.start()
    assert app.db is not None
    rev = seed(app.db, policy, DOC)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
            # Wait for the seed with a generous server-side wait of our own (polling).
            for _ in range(200):
                if app.engine is not None and app.engine.applied >= rev:
                    break
                await asyncio.sleep(0.02)
            assert app.engine is not None
            assert app.engine.applied >= rev
            yield Server(app, stub, ch, rev)
    finally:
        await app.stop(0)


# -- strategies ---------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
CONTROL = st.text(st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=5)
VALID_ID = st.from_regex(ID_RE, fullmatch=True)
IDS = st.one_of(
    st.sampled_from(KNOWN_IDS),
    VALID_ID,
    st.just(""),
    st.just("x" * 128),
    st.integers(129, 5000).map(lambda n: "a" * n),  # too long
    st.builds(lambda a, c, b: a + c + b, st.sampled_from(KNOWN_IDS), CONTROL, st.sampled_from(["", "x"])),
    st.sampled_from(["al ice", "alice\n", "ålice", "alice/../x", "a\x00b", "ws:acme-prod", "🦀", "*"]),
    TEXT,
)
SUBJECTS = st.one_of(
    st.builds(lambda k, i: f"{k}:{i}", st.sampled_from(["user", "service_account"]), IDS),
    st.sampled_from(["user:alice", "user:bob", "service_account:ci-bot", "user:ghost", "service_account:alice"]),
    st.sampled_from(
        [
            "",
            "user",
            "user:",
            "alice",
            "group:admins",
            "USER:alice",
            "role:Admin",
            "user :alice",
            "service-account:ci-bot",
            ":alice",
        ]
    ),
    st.builds(lambda i: f"group:{i}", IDS),
    TEXT,
)
SCOPES = st.one_of(
    st.sampled_from(WS_SCOPES),
    st.sampled_from(ORG_PERMS),
    st.sampled_from(
        [
            "",
            "fly",
            "see_flow",
            "SEE_FLOWS",
            "see-flows",
            "*",
            "read:",
            "create:everything",
            "see_flows ",
            "x" * 200,
            "a:b:c",
        ]
    ),
    st.from_regex(r"[a-z_]{1,64}(:[a-z_]{1,64})?", fullmatch=True),
    TEXT,
)
REVISIONS = st.one_of(st.just(0), st.integers(1, 3), st.just(10**6), st.just(2**64 - 1))


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, str, str]:
    """``(mode, workspace, organization)``; mode "both" puts both on the wire."""
    mode = draw(st.sampled_from(["workspace", "organization", "none", "both-ws-last", "both-org-last"]))
    ws = draw(IDS) if mode != "none" and mode != "organization" else ""
    org = draw(IDS) if mode != "none" and mode != "workspace" else ""
    return mode, ws, org


# -- the expected outcome, from the documented bounds ----------------------------------------


def id_ok(value: str) -> bool:
    return bool(ID_RE.fullmatch(value))


def subject_ok(value: str) -> bool:
    kind, sep, ident = value.partition(":")
    return bool(sep) and kind in ("user", "service_account") and id_ok(ident)


def effective_target(mode: str, ws: str, org: str) -> tuple[str, str]:
    """What the server sees: a oneof keeps the field that came last on the wire."""
    if mode == "both-ws-last":
        return ws, ""
    if mode == "both-org-last":
        return "", org
    return ws, org


def bad_target_fields(ws: str, org: str, prefix: str = "") -> set[str]:
    if ws:
        return set() if id_ok(ws) else {f"{prefix}workspace"}
    if org:
        return set() if id_ok(org) else {f"{prefix}organization"}
    return {f"{prefix}workspace", f"{prefix}organization"}  # one is required; naming either is fine


def bad_check_fields(subject: str, ws: str, org: str, scope: str, prefix: str = "") -> set[str]:
    bad = set() if subject_ok(subject) else {f"{prefix}subject"}
    target = bad_target_fields(ws, org, prefix)
    bad |= target
    catalog = POLICY.workspace_scopes if ws else POLICY.organization_permissions
    if not target and scope not in catalog:
        bad.add(f"{prefix}scope")
    if target and scope not in POLICY.all_scopes:
        bad.add(f"{prefix}scope")
    return bad


def names_nothing(subject: str, ws: str, org: str) -> bool:
    _, _, ident = subject.partition(":")
    known_subject = subject in ("user:alice", "user:bob", "service_account:ci-bot")
    return not known_subject or (ws and ws not in KNOWN_IDS) or (org and org != "acme") or not ident


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Any


async def outcome(call: Callable[[], Awaitable[Any]]) -> Outcome:
    try:
        return Outcome(grpc.StatusCode.OK, "", await call())
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code(), exc.details() or "", None)


def assert_invalid(out: Outcome, fields: set[str]) -> None:
    assert out.code == grpc.StatusCode.INVALID_ARGUMENT, (out.code, out.details, fields)
    named = out.details.split(":", 1)[0]
    assert named in fields, (out.details, fields)


def assert_fine(out: Outcome, server: Server, min_revision: int) -> None:
    """A well-formed request: answered, or UNAVAILABLE when min_revision is ahead of the store."""
    if min_revision > server.revision:
        assert out.code == grpc.StatusCode.UNAVAILABLE, (out.code, out.details)
        assert "min_revision" in out.details
    else:
        assert out.code == grpc.StatusCode.OK, (out.code, out.details)


def check_bytes(subject: str, mode: str, ws: str, org: str, scope: str, min_revision: int) -> bytes:
    base = pb.CheckRequest(subject=subject, scope=scope, min_revision=min_revision)
    if mode == "workspace":
        base.workspace = ws
    elif mode == "organization":
        base.organization = org
    raw = base.SerializeToString()
    w = pb.CheckRequest(workspace=ws).SerializeToString() if ws or mode.startswith("both") else b""
    o = pb.CheckRequest(organization=org).SerializeToString() if org or mode.startswith("both") else b""
    if mode == "both-ws-last":
        return raw + o + w
    if mode == "both-org-last":
        return raw + w + o
    return raw


def raw_check(server: Server) -> Any:
    return server.channel.unary_unary(
        "/orgauthz.v1.AuthorizationService/Check",
        request_serializer=lambda b: b,
        response_deserializer=pb.CheckResponse.FromString,
    )


# -- the properties --------------------------------------------------------------------------


@SETTINGS
@given(subject=SUBJECTS, target=targets(), scope=SCOPES, min_revision=REVISIONS, explain=st.booleans())
async def test_check_rejects_every_bad_field_and_never_fails_inside(
    server: Server, subject: str, target: tuple[str, str, str], scope: str, min_revision: int, explain: bool
) -> None:
    mode, ws, org = target
    raw = check_bytes(subject, mode, ws, org, scope, min_revision)
    if explain:
        raw += pb.CheckRequest(explain=True).SerializeToString()
    out = await outcome(lambda: raw_check(server)(raw))
    seen_ws, seen_org = effective_target(mode, ws, org)
    bad = bad_check_fields(subject, seen_ws, seen_org, scope)
    if bad:
        assert_invalid(out, bad)
    else:
        assert_fine(out, server, min_revision)
        if out.code == grpc.StatusCode.OK and names_nothing(subject, seen_ws, seen_org):
            assert not out.response.allowed, (subject, seen_ws, seen_org, scope)
    assert snapshots.head_revision(server.app.db) == server.revision


@st.composite
def batch_items(draw: st.DrawFn) -> list[tuple[str, str, str, str]]:
    shape = draw(st.sampled_from(["few", "few", "few", "none", "max", "over"]))
    good = ("user:bob", "acme-prod", "", "see_flows")
    if shape == "none":
        return []
    if shape in ("max", "over"):
        n = 1000 if shape == "max" else draw(st.sampled_from([1001, 1002, 2000]))
        items = [good] * n
        if draw(st.booleans()):  # one bad item somewhere
            i = draw(st.integers(0, n - 1))
            items[i] = ("user:bob", "acme-prod", "", "fly")
        return items
    out = []
    for _ in range(draw(st.integers(1, 5))):
        _, ws, org = draw(targets().filter(lambda t: not t[0].startswith("both")))
        out.append((draw(SUBJECTS), ws, org, draw(SCOPES)))
    return out


@SETTINGS
@given(items=batch_items(), min_revision=REVISIONS)
async def test_batch_check_rejects_every_bad_field_and_never_fails_inside(
    server: Server, items: list[tuple[str, str, str, str]], min_revision: int
) -> None:
    request = pb.BatchCheckRequest(
        min_revision=min_revision,
        items=[
            pb.CheckRequest(subject=s, scope=c, **({"workspace": w} if w else {"organization": o} if o else {}))
            for s, w, o, c in items
        ],
    )
    out = await outcome(lambda: server.stub.BatchCheck(request))
    if not 1 <= len(items) <= 1000:
        assert_invalid(out, {"items"})
    else:
        bad = set().union(*(bad_check_fields(s, w, o, c, f"items[{i}].") for i, (s, w, o, c) in enumerate(items)))
        if bad:
            assert_invalid(out, bad)
        else:
            assert_fine(out, server, min_revision)
            if out.code == grpc.StatusCode.OK:
                assert len(out.response.results) == len(items)
                for (s, w, o, _), r in zip(items, out.response.results, strict=True):
                    if names_nothing(s, w, o):
                        assert not r.allowed
    assert snapshots.head_revision(server.app.db) == server.revision


@SETTINGS
@given(subject=SUBJECTS, target=targets(), min_revision=REVISIONS)
async def test_list_scopes_rejects_every_bad_field_and_never_fails_inside(
    server: Server, subject: str, target: tuple[str, str, str], min_revision: int
) -> None:
    mode, ws, org = target
    base = pb.ListScopesRequest(subject=subject, min_revision=min_revision)
    raw = base.SerializeToString()
    w = pb.ListScopesRequest(workspace=ws).SerializeToString()
    o = pb.ListScopesRequest(organization=org).SerializeToString()
    raw += {"workspace": w, "organization": o, "none": b"", "both-ws-last": o + w, "both-org-last": w + o}[mode]
    call = server.channel.unary_unary(
        "/orgauthz.v1.AuthorizationService/ListScopes",
        request_serializer=lambda b: b,
        response_deserializer=pb.ListScopesResponse.FromString,
    )
    out = await outcome(lambda: call(raw))
    seen_ws, seen_org = effective_target(mode, ws, org)
    bad = (set() if subject_ok(subject) else {"subject"}) | bad_target_fields(seen_ws, seen_org)
    if bad:
        assert_invalid(out, bad)
    else:
        assert_fine(out, server, min_revision)
        if out.code == grpc.StatusCode.OK and names_nothing(subject, seen_ws, seen_org):
            assert list(out.response.scopes) == []
    assert snapshots.head_revision(server.app.db) == server.revision


PAGE_SIZES = st.one_of(st.integers(0, 1000), st.integers(1001, 2**32 - 1), st.sampled_from([0, 1, 1000, 1001]))
PAGE_TOKENS = st.one_of(
    st.just(""),
    TEXT,
    st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="), max_size=60),
    st.integers(1025, 5000).map(lambda n: "QUFB" * (n // 4)),
    st.sampled_from(["AA==", "YWNtZQBhY21lLXByb2Q=", "not a token!", "\x00", "ü"]),
)


@SETTINGS
@given(subject=SUBJECTS, page_size=PAGE_SIZES, page_token=PAGE_TOKENS, min_revision=REVISIONS)
async def test_list_accessible_workspaces_rejects_every_bad_field_and_never_fails_inside(
    server: Server, subject: str, page_size: int, page_token: str, min_revision: int
) -> None:
    request = pb.ListAccessibleWorkspacesRequest(
        subject=subject, page_size=page_size, page_token=page_token, min_revision=min_revision
    )
    out = await outcome(lambda: server.stub.ListAccessibleWorkspaces(request))
    bad = set() if subject_ok(subject) else {"subject"}
    if page_size > 1000:
        bad.add("page_size")
    if bad:
        # A forged page token may be named as well: any of the bad fields will do.
        assert_invalid(out, bad | ({"page_token"} if page_token else set()))
    elif out.code == grpc.StatusCode.INVALID_ARGUMENT:
        # Page tokens are opaque: one the server cannot read is rejected by name.
        assert out.details.split(":", 1)[0] == "page_token", out.details
        assert page_token
    else:
        assert_fine(out, server, min_revision)
        if out.code == grpc.StatusCode.OK and names_nothing(subject, "", ""):
            assert list(out.response.workspaces) == []
    assert snapshots.head_revision(server.app.db) == server.revision


# -- a few cases spelled out ------------------------------------------------------------------


async def test_each_field_is_named_when_it_is_out_of_bounds(server: Server) -> None:
    s = server.stub
    cases: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (lambda: s.Check(pb.CheckRequest(subject="", workspace="acme-prod", scope="see_flows")), "subject"),
        (lambda: s.Check(pb.CheckRequest(subject="bob", workspace="acme-prod", scope="see_flows")), "subject"),
        (
            lambda: s.Check(pb.CheckRequest(subject="user:" + "b" * 129, workspace="acme-prod", scope="see_flows")),
            "subject",
        ),
        (lambda: s.Check(pb.CheckRequest(subject="user:bob", scope="see_flows")), "workspace"),
        (lambda: s.Check(pb.CheckRequest(subject="user:bob", workspace="acme prod", scope="see_flows")), "workspace"),
        (
            lambda: s.Check(pb.CheckRequest(subject="user:bob", organization="a" * 129, scope="read:account")),
            "organization",
        ),
        (lambda: s.Check(pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="fly")), "scope"),
        (lambda: s.Check(pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="")), "scope"),
        # A scope of the other level is unknown at this one.
        (lambda: s.Check(pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="read:account")), "scope"),
        (lambda: s.Check(pb.CheckRequest(subject="user:bob", organization="acme", scope="see_flows")), "scope"),
        (lambda: s.BatchCheck(pb.BatchCheckRequest()), "items"),
        (lambda: s.BatchCheck(pb.BatchCheckRequest(items=[pb.CheckRequest(subject="user:bob")])), "items[0].workspace"),
        (lambda: s.ListScopes(pb.ListScopesRequest(subject="user:bob")), "workspace"),
        (lambda: s.ListScopes(pb.ListScopesRequest(subject="nobody", workspace="acme-prod")), "subject"),
        (
            lambda: s.ListAccessibleWorkspaces(pb.ListAccessibleWorkspacesRequest(subject="user:bob", page_size=1001)),
            "page_size",
        ),
        (
            lambda: s.ListAccessibleWorkspaces(
                pb.ListAccessibleWorkspacesRequest(subject="user:bob", page_token="???")
            ),
            "page_token",
        ),
        (lambda: s.ListAccessibleWorkspaces(pb.ListAccessibleWorkspacesRequest(subject="")), "subject"),
    ]
    for call, field in cases:
        out = await outcome(call)
        assert_invalid(out, {field})
    assert snapshots.head_revision(server.app.db) == server.revision


async def test_well_formed_ids_that_name_nothing_are_a_plain_deny(server: Server) -> None:
    s = server.stub
    for req in [
        pb.CheckRequest(subject="user:nobody", workspace="acme-prod", scope="see_flows"),
        pb.CheckRequest(subject="service_account:nobody", workspace="acme-prod", scope="see_flows"),
        pb.CheckRequest(subject="user:alice", workspace="nowhere", scope="see_flows"),
        pb.CheckRequest(subject="user:alice", organization="nobody-inc", scope="read:account"),
        pb.CheckRequest(subject="user:" + "z" * 128, workspace="w" * 128, scope="see_flows"),
    ]:
        got = await s.Check(req)
        assert not got.allowed
    assert (await s.Check(pb.CheckRequest(subject="user:alice", workspace="acme-prod", scope="see_flows"))).allowed


# -- BatchCheck's items that do not decode -----------------------------------------------------

_ITEM = pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="see_flows").SerializeToString()
_BAD_UTF8 = bytes([0x0A, 1, 0xFF])  # a CheckRequest whose subject is one byte of invalid UTF-8


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # decoding happens before the store
@pytest.mark.parametrize(
    "data",
    [
        b"".join(b"\x0a" + bytes([len(item)]) + item for item in (_ITEM, _ITEM, _BAD_UTF8)),  # items[2]
        b"\x0a\x80\x80\x80\x80\x80\x00",  # a length in six bytes
        b"\x0a" + b"\x80" * 9 + b"\x02",  # a ten-byte length that wraps past 2^64 to 0
        b"\x0a\xff\xff\xff\xff\x0f",  # a length of 2^32 - 1
        b"\x0a\xc8\x01" + b"\x3b" * 100 + b"\x3c" * 100,  # an item nesting groups one level too deep
        (b"\x0a\x03" + _BAD_UTF8) * 1001,  # more items than a batch holds, none of which decodes
    ],
)
async def test_batch_check_whose_items_do_not_decode_is_invalid_argument_naming_the_request(
    server: Server, data: bytes
) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011  # DecodeError, whatever protobuf raises
        pb.BatchCheckRequest.FromString(data)
    batch_check = server.channel.unary_unary(
        "/orgauthz.v1.AuthorizationService/BatchCheck",
        request_serializer=bytes,
        response_deserializer=pb.BatchCheckResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await batch_check(data, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert (err.value.details() or "").startswith("request: not a valid encoding"), err.value.details()
    assert snapshots.head_revision(server.app.db) == server.revision
