"""Hypothesis strategies for any request message, built from its protobuf descriptor.

Every field may be left unset (a missing field), hold a plausible value taken from the
world (so calls reach past validation into the services), or hold something hostile:
unicode, control characters, NUL, very long text, id and subject look-alikes, key and
token look-alikes, boundary and out-of-range numbers, unknown enum values, timestamps
outside any calendar, and repeated fields far beyond their documented bounds.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from orgauthz.domain import bounds
from tests.support.rpcs import OrgWorld

F = FieldDescriptor

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\n",
    "\x1b[31m",
    "\x7f",
    "\u200b",
    "\ufeff",
    "\u202e",
    "é",
    "💥" * 70,
    "x" * 129,
    "x" * 257,
    "h" * 65,
    "n" * 201,
    "d" * 1001,
    "e" * 255 + "@x.test",
    "y" * 20_000,
    "a" * 64 + "@" + "b" * 200 + ".test",
    "user:",
    ":",
    "user:a b",
    "user:" + "u" * 128,
    "user:" + "u" * 129,
    "service_account:",
    "team:x",
    "role:Admin",
    "org:x",
    "ws:x",
    "*",
    "Admin",
    "admin",
    "Member",
    "Owner",
    "../..",
    "' OR '1'='1",
    "%s%s%n",
    "${jndi:x}",
    "null",
    "None",
    "0",
    "-1",
    "pnb_",
    "pnb_" + "A" * 40,
    "pnb_" + "A" * 39 + "!",
    "pnb_" + "A" * 300,
    "PNB_" + "A" * 40,
    "A" * 43,
    "A" * 42 + "!",
    "A" * 44,
    "AAAA====",
    "%%%",
    "MDo=",  # token and page-token look-alikes
    "see_flows",
    "SEE_FLOWS",
    "create:invitation",
    "a:b:c",
    "x@y",
    "@",
    "a@",
    "@b",
    "a@b@c",
]

_UINT32 = [
    0,
    1,
    59,
    60,
    99,
    100,
    101,
    999,
    1000,
    1001,
    172_800,
    172_801,
    7_776_000,
    7_776_001,
    1_000_000,
    1_000_001,
    2**31 - 1,
    2**31,
    2**32 - 1,
]
_UINT64 = [*_UINT32, 315_360_000, 315_360_001, 2**53, 2**63 - 1, 2**63, 2**64 - 1]
_INT = [0, 1, -1, -(2**31), 2**31 - 1]


def text_values(world: dict[str, OrgWorld]) -> st.SearchStrategy[str]:
    """Hostile text mixed with real ids, subjects, emails, keys and tokens of the world."""
    real: list[str] = []
    for w in world.values():
        real += w.ids() + w.subjects + list(w.invitation_emails.values())
        real += list(w.service_accounts.values()) + list(w.invitations.values())
        real += [k[:-1] + ("A" if k[-1] != "A" else "B") for k in w.service_accounts.values()]  # one char off
    real += [
        "Viewer",
        "Runner",
        "Developer",
        "Owner",
        "Worker",
        "Member",
        "Admin",
        "workspace",
        "organization",
        "pending",
        "orgauthz.member.removed",
        "platform",
        "x@example.test",
    ]
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.sampled_from(real),
        st.text(max_size=60),  # any unicode (valid UTF-8: protobuf refuses lone surrogates)
        st.text(st.characters(max_codepoint=0x1F), max_size=8),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=100, max_size=400),
        st.builds(lambda a, b: a + b, st.sampled_from(real), st.sampled_from(HOSTILE_TEXT[:12])),
    )


def plausible(name: str, world: dict[str, OrgWorld]) -> list[str]:
    """Values a field of this name takes in a well-formed request, from both organizations."""
    ws = [x for w in world.values() for x in w.workspaces]
    subjects = [x for w in world.values() for x in w.subjects]
    roles = [
        "Viewer",
        "Runner",
        "Developer",
        "Owner",
        "Worker",
        "Member",
        "Admin",
        *(x for w in world.values() for x in w.roles),
    ]
    table: list[tuple[str, list[str]]] = [
        ("page_token", [bounds.encode_page_token(k) for k in ("0:", "1:x", "a-admin", "see_flows", "a/a-ws1", "3")]),
        ("organization", list(world)),
        ("workspace", ws),
        ("subject", subjects),
        ("actor", [*subjects, "platform"]),
        ("role", roles),
        ("inherits", roles),
        ("user_id", [u for w in world.values() for u in w.users]),
        ("email", [*(e for w in world.values() for e in w.invitation_emails.values()), "admin@a.test"]),
        ("token", [t for w in world.values() for t in w.invitations.values()]),
        ("api_key", [k for w in world.values() for k in [*w.service_accounts.values(), *w.user_keys.values()]]),
        ("scope", ["see_flows", "manage_flows", "manage_workspace_users", "create:invitation", "read:account"]),
        ("level", ["workspace", "organization", "view", "run", "manage"]),
        ("object", ["deployment:d1", "work_pool:p1", "block:b1", "deployment:d2"]),
        ("kind", ["deployment", "work_pool", "block"]),
        ("deployment", ["d1", "d2"]),
        ("work_pool", ["p1", "p2"]),
        ("event", ["orgauthz.member.removed", "orgauthz.invitation.created"]),
        ("handle", ["new-one", "prod", "a", "b"]),
        ("name", ["A name", "Deployer", "bot"]),
        ("description", ["what it is for"]),
        ("id", [x for w in world.values() for x in w.ids()] + ["fresh-id"]),
    ]
    for key, values in table:
        if key in name:
            return values
    return []


def _scalar(f: FieldDescriptor, world: dict[str, OrgWorld]) -> st.SearchStrategy[Any]:
    t = f.type
    if t in (F.TYPE_STRING,):
        good = plausible(f.name, world)
        if good:  # half well-formed, so calls get past validation with a hostile value elsewhere
            return st.one_of(st.sampled_from(good), text_values(world))
        return text_values(world)
    if t == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_UINT32 or t == F.TYPE_FIXED32:
        return st.one_of(st.sampled_from(_UINT32), st.integers(0, 2**32 - 1))
    if t == F.TYPE_UINT64 or t == F.TYPE_FIXED64:
        return st.one_of(st.sampled_from(_UINT64), st.integers(0, 2**64 - 1))
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return st.one_of(st.sampled_from(_INT), st.integers(-(2**31), 2**31 - 1))
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return st.one_of(st.sampled_from([*_INT, -(2**63), 2**63 - 1]), st.integers(-(2**63), 2**63 - 1))
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == F.TYPE_FLOAT else 64)
    if t == F.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 1000))  # proto3 enums are open
    raise AssertionError(f"no strategy for field type {t} ({f.full_name})")


def _timestamp() -> st.SearchStrategy[dict[str, int]]:
    seconds = st.one_of(
        st.sampled_from(
            [
                0,
                -1,
                -62_135_596_801,
                -62_135_596_800,
                253_402_300_799,
                253_402_300_800,
                2**63 - 1,
                -(2**63),
                1_700_000_000,
            ]
        ),
        st.integers(-(2**63), 2**63 - 1),
    )
    nanos = st.one_of(st.sampled_from([0, -1, 999_999_999, 1_000_000_000]), st.integers(-(2**31), 2**31 - 1))
    return st.fixed_dictionaries({"seconds": seconds, "nanos": nanos})


def _good(f: FieldDescriptor, world: dict[str, OrgWorld], depth: int) -> st.SearchStrategy[Any] | None:
    """A well-formed value for the field (None: leave it unset)."""
    if f.message_type is not None:
        if f.message_type.full_name == "google.protobuf.Timestamp" or depth >= 2:
            return None
        one: st.SearchStrategy[Any] = message(f.message_type, world, depth + 1, hostile=False)
    elif f.type == F.TYPE_STRING:
        values = plausible(f.name, world)
        if not values:
            return None
        one = st.sampled_from(values)
    elif f.type == F.TYPE_BOOL:
        one = st.booleans()
    elif f.type == F.TYPE_ENUM:
        one = st.sampled_from([v.number for v in f.enum_type.values])
    else:
        one = st.sampled_from([0, 0, 2, 100])
    return st.lists(one, min_size=1, max_size=2) if f.is_repeated else one


def _hostile(f: FieldDescriptor, world: dict[str, OrgWorld], depth: int) -> st.SearchStrategy[Any] | None:
    if f.message_type is not None:
        if f.message_type.GetOptions().map_entry or depth >= 2:
            return None
        one = message(f.message_type, world, depth + 1)
    else:
        one = _scalar(f, world)
    if f.is_repeated:
        # Small lists, or one element repeated far past every documented bound.
        big = st.builds(lambda x, n: [x] * n, one, st.sampled_from([101, 201, 1000, 1001, 2500]))
        one = st.one_of(st.lists(one, max_size=4), big)
    return one


def message(
    desc: Descriptor, world: dict[str, OrgWorld], depth: int = 0, hostile: bool = True
) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of field name -> value (absent key: the field is not set).

    Half the messages are hostile throughout; the other half are well-formed but for one
    field, which is hostile (or missing), so the calls reach the services' own checks.
    """
    if desc.full_name == "google.protobuf.Timestamp":
        return _timestamp()
    bad = {f.name: _hostile(f, world, depth) for f in desc.fields}
    good = {f.name: _good(f, world, depth) for f in desc.fields}
    oneofs = {f.name: o.name for o in desc.oneofs for f in o.fields}
    names = [f.name for f in desc.fields]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        everywhere = hostile and draw(st.booleans())
        target = draw(st.sampled_from(names)) if names and hostile else None
        out: dict[str, Any] = {}
        chosen: dict[str, str] = {}
        for name in names:
            strategy = bad[name] if (everywhere or name == target) else good[name]
            if strategy is None or (everywhere and draw(st.integers(0, 9)) < 3):
                continue  # missing field
            group = oneofs.get(name)
            if group is not None:
                if group in chosen:
                    continue
                chosen[group] = name
            out[name] = draw(strategy)
        return out

    return build()


def fill(msg: Any, values: dict[str, Any]) -> Any:
    """Sets ``values`` (from :func:`message`) on the protobuf message ``msg``; returns it."""
    for name, value in values.items():
        f = msg.DESCRIPTOR.fields_by_name[name]
        if f.message_type is not None:
            if f.is_repeated:
                for item in value:
                    fill(getattr(msg, name).add(), item)
            else:
                fill(getattr(msg, name), value)
        elif f.is_repeated:
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


def has_min_revision(values: dict[str, Any]) -> bool:
    """Whether a request asks for a revision (SPEC §3 lets such a read fail UNAVAILABLE when ahead)."""
    if values.get("min_revision"):
        return True
    return any(
        isinstance(v, list) and any(isinstance(i, dict) and i.get("min_revision") for i in v) for v in values.values()
    )
