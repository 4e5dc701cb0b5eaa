"""The store's contract, one suite for SQLite and PostgreSQL (the ``db`` fixture runs both).

What the engine and the replicas rely on: an import reads back as written; every write
commits exactly one revision, strictly increasing and contiguous, also when writers race;
a write that fails leaves no trace; the change record can be read in order and filtered;
uniqueness violations are AlreadyExists; a bad import document is refused by path, whole.
"""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select

from orgauthz.domain.lines import OrgSnapshot
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, RoleDef
from orgauthz.errors import AlreadyExists, InvalidArgument, LimitExceeded
from orgauthz.store import base as store
from orgauthz.store import snapshots
from orgauthz.store.base import Decision, Locked, Store, Write
from orgauthz.store.importer import import_document
from orgauthz.store.models import Change, Invitation, Organization, User, Workspace
from tests.support.orgs import ACME, GLOBEX, doc
from tests.support.store import commit_now, commit_rows_now


def expected_snapshot(org: dict[str, Any]) -> OrgSnapshot:
    """What ``load_org`` must return for an imported organization (revision aside)."""
    return OrgSnapshot(
        org_id=org["id"],
        revision=0,
        workspaces={w["id"]: w.get("default_role") for w in org.get("workspaces", [])},
        members={m["user"]: m.get("role", "Member") for m in org.get("members", [])},
        service_accounts={a["id"]: a.get("role", "Member") for a in org.get("service_accounts", [])},
        grants=sorted(
            (w["id"], g["subject"], g["role"]) for w in org.get("workspaces", []) for g in w.get("access", [])
        ),
        custom_roles={
            r["id"]: RoleDef(
                name=r["id"],
                level=ORGANIZATION if r["level"] == ORGANIZATION else WORKSPACE,
                description=r.get("description") or r["name"],
                scopes=tuple(r["scopes"]),
                inherits=r.get("inherits", ""),
                builtin=False,
            )
            for r in org.get("custom_roles", [])
        },
    )


def loaded(db: Store, org_id: str) -> tuple[OrgSnapshot, int]:
    got = snapshots.load_org(db, org_id)
    assert got is not None
    snap, org_rev = got
    snap.grants = sorted(snap.grants)
    return snap, org_rev


_ORG = select(Organization.id).where(Organization.id == bindparam("org"))


def _workspace(ws_id: str, handle: str, *, org: str = "globex") -> Write:
    return store.insert(
        Workspace, {"id": ws_id, "org_id": org, "handle": handle, "name": ws_id, "created_at": datetime.now(UTC)}
    )


def revisions(db: Store) -> list[int]:
    return [e.revision for e in snapshots.changes_since(db, 0, limit=100_000)]


def touch(db: Store, org_id: str, kind: str = "test.touched", **change: Any) -> int:
    """A minimal write: renames the organization; returns the revision it committed."""

    def decide(at: Locked) -> Decision[int]:
        rename = store.update(Organization, {"id": org_id}, name=f"r{at.revision}")
        return Decision(at.revision, writes=[rename], change=at.change(**change))

    return commit_now(db, org_id, kind, decide).result


# -- import round trip -------------------------------------------------------------------------


def test_import_round_trip(db: Store, policy: PolicySet) -> None:
    result = import_document(db, policy, doc(ACME, GLOBEX))
    assert result.organizations == 2
    assert result.revision == 2
    for org, rev in ((ACME, 1), (GLOBEX, 2)):
        snap, org_rev = loaded(db, org["id"])
        want = expected_snapshot(org)
        assert org_rev == rev
        assert snap.revision == 2  # read at the store's head
        assert (snap.workspaces, snap.members, snap.service_accounts, snap.grants, snap.custom_roles) == (
            want.workspaces,
            want.members,
            want.service_accounts,
            want.grants,
            want.custom_roles,
        )
    assert snapshots.load_org(db, "no-such-org") is None
    with db.read() as s:
        assert s.scalar(select(User.email).where(User.id == "alice")) == "alice@acme.test"
        org = s.get(Organization, "acme")
        assert org is not None
        assert (org.handle, org.name, org.max_members, org.max_service_accounts, org.max_workspaces) == (
            "acme",
            "Acme Inc.",
            50,
            10,
            20,
        )


def test_import_keeps_workspace_descriptions(db: Store, policy: PolicySet) -> None:
    """R15: a workspace's description comes in with the document (empty when absent)."""
    described = copy.deepcopy(GLOBEX)
    described["workspaces"][0]["description"] = "The main line"
    import_document(db, policy, doc(ACME, described))
    with db.read() as s:
        got = dict(s.execute(select(Workspace.id, Workspace.description)).all())
    assert got["gx-main"] == "The main line"
    assert got["acme-prod"] == ""


def test_reimport_replaces_the_organization_and_records_what_changed(db: Store, policy: PolicySet) -> None:
    import_document(db, policy, doc(ACME, GLOBEX))
    changed = copy.deepcopy(ACME)
    changed["workspaces"] = [changed["workspaces"][0], {"id": "acme-new", "handle": "new", "default_role": "Runner"}]
    changed["members"] = changed["members"][:2]
    changed["workspaces"][0]["access"] = [{"subject": "user:bob", "role": "Viewer"}]
    changed["custom_roles"] = [r for r in changed["custom_roles"] if r["id"] != "acme-bare"]
    rev = import_document(db, policy, doc(changed)).revision
    assert rev == 3
    snap, org_rev = loaded(db, "acme")
    want = expected_snapshot(changed)
    assert org_rev == 3
    assert (snap.workspaces, snap.members, snap.grants, snap.custom_roles) == (
        want.workspaces,
        want.members,
        want.grants,
        want.custom_roles,
    )
    entry = snapshots.changes_since(db, 2)[0]
    assert (entry.revision, entry.change.org_id, entry.change.kind) == (3, "acme", "organization.imported")
    assert entry.change.reload
    assert sorted(entry.change.workspaces_added) == ["acme-new", "acme-prod"]
    assert sorted(entry.change.workspaces_removed) == ["acme-sandbox", "acme-vault"]
    # The other organization is untouched.
    assert loaded(db, "globex")[1] == 2
    index = snapshots.load_index(db)
    assert index.workspace_org == {"acme-prod": "acme", "acme-new": "acme", "gx-main": "globex"}


# -- revisions ---------------------------------------------------------------------------------


def test_revisions_strictly_increase_and_are_contiguous(db: Store, policy: PolicySet) -> None:
    assert snapshots.head_revision(db) == 0
    assert revisions(db) == []
    import_document(db, policy, doc(ACME, GLOBEX))
    got = [touch(db, "acme"), touch(db, "globex"), touch(db, "acme")]
    assert got == [3, 4, 5]
    assert revisions(db) == [1, 2, 3, 4, 5]
    assert snapshots.head_revision(db) == 5
    index = snapshots.load_index(db)
    # An organization's revision is the last change that touched it.
    assert index.org_revision == {"acme": 5, "globex": 4}
    assert index.revision == 5


def test_changes_since_orders_and_filters(db: Store, policy: PolicySet) -> None:
    import_document(db, policy, doc(ACME, GLOBEX))  # 1 acme, 2 globex
    line = ("g", "user:bob", "role:Owner", "ws:acme-prod")
    touch(db, "acme", "access.granted", add=[line])  # 3
    touch(db, "globex", "x.y")  # 4
    touch(db, "acme", "access.revoked", remove=[line])  # 5
    touch(db, "acme", "workspace.deleted", workspaces_removed=["acme-vault"])  # 6

    assert [e.revision for e in snapshots.changes_since(db, 0)] == [1, 2, 3, 4, 5, 6]
    assert [e.revision for e in snapshots.changes_since(db, 3)] == [4, 5, 6]
    assert [e.revision for e in snapshots.changes_since(db, 1, upto=4)] == [2, 3, 4]
    assert [e.revision for e in snapshots.changes_since(db, 0, org_id="acme")] == [1, 3, 5, 6]
    assert [e.revision for e in snapshots.changes_since(db, 1, upto=5, org_id="acme")] == [3, 5]
    assert [e.revision for e in snapshots.changes_since(db, 0, limit=2)] == [1, 2]
    assert [e.revision for e in snapshots.changes_since(db, 2, limit=2)] == [3, 4]
    assert snapshots.changes_since(db, 6) == []
    assert snapshots.changes_since(db, 0, org_id="nobody") == []
    by_rev = {e.revision: e.change for e in snapshots.changes_since(db, 0)}
    # The payload reads back as written: lines as tuples, kinds, workspace ownership.
    assert (by_rev[3].kind, by_rev[3].add, by_rev[3].remove) == ("access.granted", [line], [])
    assert (by_rev[5].kind, by_rev[5].add, by_rev[5].remove) == ("access.revoked", [], [line])
    assert by_rev[6].workspaces_removed == ["acme-vault"]
    assert not by_rev[4].reload
    assert by_rev[4].org_id == "globex"


def test_load_index(db: Store, policy: PolicySet) -> None:
    empty = snapshots.load_index(db)
    assert (empty.revision, empty.workspace_org, empty.org_revision) == (0, {}, {})
    import_document(db, policy, doc(ACME, GLOBEX))
    index = snapshots.load_index(db)
    assert index.revision == 2
    assert index.workspace_org == {
        "acme-prod": "acme",
        "acme-sandbox": "acme",
        "acme-vault": "acme",
        "gx-main": "globex",
    }
    assert index.org_revision == {"acme": 1, "globex": 2}


def test_orgs_of_subject(db: Store, policy: PolicySet) -> None:
    import_document(db, policy, doc(ACME, GLOBEX))
    assert snapshots.orgs_of_subject(db, "user", "bob") == ["acme", "globex"]
    assert snapshots.orgs_of_subject(db, "user", "alice") == ["acme"]
    assert snapshots.orgs_of_subject(db, "service_account", "ci-bot") == ["acme"]
    assert snapshots.orgs_of_subject(db, "service_account", "bob") == []
    assert snapshots.orgs_of_subject(db, "user", "nobody") == []


# -- atomicity -----------------------------------------------------------------------------------


def _counts(db: Store) -> tuple[int, int, int]:
    with db.read() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Change)) or 0),
            int(s.scalar(select(func.count()).select_from(Organization)) or 0),
            int(s.scalar(select(func.count()).select_from(Workspace)) or 0),
        )


class Boom(Exception):
    pass


def test_a_write_that_raises_commits_nothing(db: Store, policy: PolicySet) -> None:
    import_document(db, policy, doc(ACME))
    before = _counts(db)

    def failing(at: Locked) -> Decision[None]:
        assert at.one("org") is not None  # read under the lock
        raise Boom

    with pytest.raises(Boom):
        commit_now(db, "acme", "test.failed", failing, {"org": (_ORG, {"org": "acme"})})
    # A decision whose last row fails in the database: its first rows are not kept either.
    with pytest.raises(AlreadyExists):
        commit_rows_now(
            db,
            "acme",
            "test.failed",
            store.update(Organization, {"id": "acme"}, name="changed"),
            _workspace("half-made", "half", org="acme"),
            _workspace("acme-prod", "other", org="acme"),  # taken
            add=(("g", "user:bob", "role:Owner", "ws:half-made"),),
        )
    assert _counts(db) == before
    assert revisions(db) == [1]
    with db.read() as s:
        org = s.get(Organization, "acme")
        assert org is not None
        assert (org.name, org.revision) == ("Acme Inc.", 1)
    # The next write takes the revision the failed one would have had.
    assert touch(db, "acme") == 2


def test_a_unique_violation_is_already_exists_and_commits_nothing(db: Store, policy: PolicySet) -> None:
    import_document(db, policy, doc(ACME, GLOBEX))
    before = _counts(db)

    def add_workspace(ws_id: str, handle: str) -> None:
        commit_rows_now(db, "globex", "test.duplicate", _workspace(ws_id, handle))

    def take_handle() -> None:
        commit_rows_now(db, "globex", "test.duplicate", store.update(Organization, {"id": "globex"}, handle="acme"))

    with pytest.raises(AlreadyExists):
        add_workspace("acme-prod", "other")  # id of another organization's workspace
    with pytest.raises(AlreadyExists):
        add_workspace("gx-2", "main")  # handle taken in this organization
    with pytest.raises(AlreadyExists):
        take_handle()
    assert _counts(db) == before
    assert revisions(db) == [1, 2]


def test_a_violation_found_at_commit_leaves_no_broken_connection_behind(db: Store, policy: PolicySet) -> None:
    """On PostgreSQL the insert, the bookkeeping and the COMMIT travel together; a uniqueness
    violation answered there must not leave a connection mid-protocol in the pool."""
    import_document(db, policy, doc(ACME, GLOBEX))

    def duplicate(i: int) -> None:
        rename = store.update(Organization, {"id": "globex"}, name=f"G{i}")
        commit_rows_now(db, "globex", "test.duplicate", rename, _workspace(f"gx-{i}", "main"))

    for i in range(12):
        with pytest.raises(AlreadyExists):
            duplicate(i)
        commit_rows_now(db, "globex", "test.next", _workspace(f"gy-{i}", f"h{i}"))
    assert revisions(db)[-1] == 2 + 12
    with db.read() as s:
        assert s.get(Organization, "globex").name != "G11"  # type: ignore[union-attr]


def test_concurrent_writers_get_distinct_contiguous_revisions(db: Store, policy: PolicySet) -> None:
    import_document(db, policy, doc(ACME, GLOBEX))
    threads, per_thread = 6, 5
    got: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(i: int) -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                got[i].append(touch(db, "acme" if i % 2 else "globex", f"test.t{i}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors
    every = sorted(r for rs in got for r in rs)
    assert every == list(range(3, 3 + threads * per_thread))
    for rs in got:  # each writer saw its own revisions increase
        assert rs == sorted(rs)
    assert revisions(db) == list(range(1, 3 + threads * per_thread))
    kinds = {e.revision: e.change.kind for e in snapshots.changes_since(db, 2, limit=1000)}
    for i, rs in enumerate(got):
        assert {kinds[r] for r in rs} == {f"test.t{i}"}
    index = snapshots.load_index(db)
    assert index.org_revision["acme"] == max(r for i, rs in enumerate(got) if i % 2 for r in rs)
    assert index.org_revision["globex"] == max(r for i, rs in enumerate(got) if not i % 2 for r in rs)


# -- the importer refuses bad documents, whole ---------------------------------------------------


def _set(path: str, value: Any) -> dict[str, Any]:
    """ACME and GLOBEX with one value replaced at ``path`` (dotted, [i] for list items)."""
    document = doc(ACME, GLOBEX)
    node: Any = document
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return document


BAD_DOCUMENTS = [
    # (what to change, new value, the path the error names)
    ("organizations", [], "organizations"),
    ("organizations", "acme", "organizations"),
    ("organizations[1]", "globex", "organizations[1]"),
    ("organizations[1].id", "glo bex", "organizations[1].id"),
    ("organizations[0].id", "", "organizations[0].id"),
    ("organizations[0].handle", "Acme!", "organizations[0].handle"),
    ("organizations[0].name", "", "organizations[0].name"),
    ("organizations[0].custom_roles[0].id", "Viewer", "organizations[0].custom_roles[0].id"),
    ("organizations[0].custom_roles[0].level", "galaxy", "organizations[0].custom_roles[0].level"),
    ("organizations[0].custom_roles[1].inherits", "Admin", "organizations[0].custom_roles[1].inherits"),
    ("organizations[0].custom_roles[0].inherits", "Member", "organizations[0].custom_roles[0].inherits"),
    ("organizations[0].custom_roles[0].scopes", ["see_flows", "fly"], "organizations[0].custom_roles[0].scopes[1]"),
    ("organizations[0].custom_roles[1].scopes", ["see_flows"], "organizations[0].custom_roles[1].scopes[0]"),
    ("organizations[0].members[1].user", "b ob", "organizations[0].members[1].user"),
    ("organizations[0].members[0].email", "not-an-email", "organizations[0].members[0].email"),
    ("organizations[0].members[1].role", "Viewer", "organizations[0].members[1].role"),
    ("organizations[0].members[1].role", "acme-deployer", "organizations[0].members[1].role"),
    ("organizations[0].service_accounts[0].role", "Admin", "organizations[0].service_accounts[0].role"),
    ("organizations[0].service_accounts[0].id", "ci bot", "organizations[0].service_accounts[0].id"),
    ("organizations[0].workspaces[1].id", "x" * 129, "organizations[0].workspaces[1].id"),
    ("organizations[0].workspaces[1].handle", "Sand Box", "organizations[0].workspaces[1].handle"),
    ("organizations[0].workspaces[0].default_role", "Member", "organizations[0].workspaces[0].default_role"),
    ("organizations[0].workspaces[0].default_role", "acme-auditor", "organizations[0].workspaces[0].default_role"),
    (
        "organizations[0].workspaces[0].access[0].subject",
        "user:zed",
        "organizations[0].workspaces[0].access[0].subject",
    ),
    ("organizations[0].workspaces[0].access[0].subject", "bob", "organizations[0].workspaces[0].access[0].subject"),
    ("organizations[0].workspaces[0].access[0].role", "Admin", "organizations[0].workspaces[0].access[0].role"),
    ("organizations[0].workspaces[0].access[0].role", "acme-auditor", "organizations[0].workspaces[0].access[0].role"),
    # R16: a member of another organization in the same document is still an outsider here.
    (
        "organizations[1].workspaces[0].access",
        [{"subject": "user:alice", "role": "Viewer"}],
        "organizations[1].workspaces[0].access[0].subject",
    ),
]


def _refusals(db: Store, policy: PolicySet, table: list[tuple[str, Any, str]]) -> list[Any]:
    """Imports each bad document; returns the cases not refused with their own path."""
    wrong = []
    for path, value, named in table:
        try:
            import_document(db, policy, _set(path, value))
        except InvalidArgument as exc:
            if exc.field != named:
                wrong.append((path, value, named, exc.field))
        except Exception as exc:  # reported as a wrong answer, with its type
            wrong.append((path, value, named, repr(exc)))
        else:
            wrong.append((path, value, named, "accepted"))
    return wrong


# One database per backend for the whole table: the checks run before any write.
def test_importer_rejects_a_bad_document_naming_the_path_and_writes_nothing(db: Store, policy: PolicySet) -> None:
    assert _refusals(db, policy, BAD_DOCUMENTS) == []
    assert _counts(db) == (0, 0, 0)


MALFORMED = [
    # Shapes YAML allows but the format does not: refused by path, never a crash.
    ("organizations[0].members", "alice", "organizations[0].members"),
    ("organizations[0].members[0]", "alice", "organizations[0].members[0]"),
    ("organizations[0].workspaces[0]", ["acme-prod"], "organizations[0].workspaces[0]"),
    ("organizations[0].workspaces[0].access[0]", "user:bob", "organizations[0].workspaces[0].access[0]"),
    ("organizations[0].custom_roles[0].scopes", "see_flows", "organizations[0].custom_roles[0].scopes"),
    ("organizations[0].limits", {"members": "many"}, "organizations[0].limits.members"),
    ("organizations[0].limits", {"members": -1}, "organizations[0].limits.members"),
]


def test_importer_rejects_malformed_shapes_naming_the_path(db: Store, policy: PolicySet) -> None:
    assert _refusals(db, policy, MALFORMED) == []
    assert _counts(db) == (0, 0, 0)


DUPLICATES = [
    # Ids the store keeps unique, repeated inside one document: refused before anything is written.
    ("organizations[1].id", "acme", "organizations[1].id"),
    ("organizations[1].handle", "acme", "organizations[1].handle"),
    ("organizations[1].workspaces[0].id", "acme-prod", "organizations[1].workspaces[0].id"),
    ("organizations[0].workspaces[1].handle", "production", "organizations[0].workspaces[1].handle"),
    ("organizations[0].service_accounts[1].id", "ci-bot", "organizations[0].service_accounts[1].id"),
    ("organizations[0].custom_roles[2].id", "acme-deployer", "organizations[0].custom_roles[2].id"),
]


def test_importer_rejects_duplicates_within_the_document_and_writes_nothing(db: Store, policy: PolicySet) -> None:
    assert _refusals(db, policy, DUPLICATES) == []
    assert _counts(db) == (0, 0, 0)


def _thief(**fields: Any) -> dict[str, Any]:
    """Globex, with ``fields`` that belong to Acme in the store."""
    return {**copy.deepcopy(GLOBEX), **fields}


ACME_WORKSPACES = {"acme-prod": "acme", "acme-sandbox": "acme", "acme-vault": "acme"}
INITECH: dict[str, Any] = {
    "id": "initech",
    "handle": "initech",
    "name": "Initech",
    "workspaces": [{"id": "it-1", "handle": "one"}],
}


@pytest.mark.parametrize(
    ("thief", "named"),
    [
        (_thief(workspaces=[{"id": "acme-prod", "handle": "stolen"}]), "organizations[1].workspaces[0].id"),
        (_thief(handle="acme"), "organizations[1].handle"),
        (_thief(service_accounts=[{"id": "ci-bot", "name": "Bot"}]), "organizations[1].service_accounts[0].id"),
        (_thief(custom_roles=[{"id": "acme-bare", "name": "Bare"}]), "organizations[1].custom_roles[0].id"),
    ],
    ids=["workspace", "handle", "service-account", "custom-role"],
)
def test_importer_refuses_what_another_organization_holds_and_writes_nothing(
    db: Store, policy: PolicySet, thief: dict[str, Any], named: str
) -> None:
    """Organizations are written one at a time: Initech, first in the document, would be
    imported before the store refused Globex's id. Nothing is written, and the path is named."""
    import_document(db, policy, doc(ACME))
    with pytest.raises(InvalidArgument) as refused:
        import_document(db, policy, doc(INITECH, thief))
    assert refused.value.field == named
    assert revisions(db) == [1]
    assert snapshots.load_index(db).workspace_org == ACME_WORKSPACES


def test_importer_moves_an_id_to_an_organization_imported_after_the_one_giving_it_up(
    db: Store, policy: PolicySet
) -> None:
    import_document(db, policy, doc(ACME))
    acme = copy.deepcopy(ACME)
    acme["workspaces"] = [w for w in acme["workspaces"] if w["id"] != "acme-vault"]
    globex = _thief(workspaces=[{"id": "acme-vault", "handle": "vault"}])
    with pytest.raises(InvalidArgument) as refused:  # Globex first: Acme still holds it then
        import_document(db, policy, doc(globex, acme))
    assert refused.value.field == "organizations[0].workspaces[0].id"
    assert revisions(db) == [1]
    import_document(db, policy, doc(acme, globex))
    assert snapshots.load_index(db).workspace_org == {
        "acme-prod": "acme",
        "acme-sandbox": "acme",
        "acme-vault": "globex",
    }


def test_importer_takes_ids_yaml_reads_as_numbers(db: Store, policy: PolicySet) -> None:
    """``id: 123`` is the id "123" (YAML gives an int), written and checked as such, and
    importing the same document again replaces the organization."""
    numeric = {
        "organizations": [
            {
                "id": 123,
                "handle": "n123",
                "name": "Numbers",
                "members": [{"user": 42, "role": "Admin"}],
                "workspaces": [{"id": 7, "handle": "seven", "access": [{"subject": "user:42", "role": "Viewer"}]}],
            }
        ]
    }
    import_document(db, policy, numeric)
    import_document(db, policy, numeric)
    assert snapshots.load_index(db).workspace_org == {"7": "123"}
    loaded = snapshots.load_org(db, "123")
    assert loaded is not None
    assert loaded[0].grants == [("7", "user:42", "Viewer")]
    assert numeric["organizations"][0]["id"] == 123  # the caller's document is left as it was


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"members": 2}, "organizations[0].members"),
        ({"service_accounts": 1}, "organizations[0].service_accounts"),
        ({"workspaces": 2}, "organizations[0].workspaces"),
    ],
    ids=["members", "service-accounts", "workspaces"],
)
def test_r10_importer_refuses_a_document_over_its_own_limits_and_writes_nothing(
    db: Store, policy: PolicySet, limits: dict[str, int], named: str
) -> None:
    """Acme has 3 members, 2 service accounts and 3 workspaces: one over each limit here."""
    with pytest.raises(InvalidArgument) as refused:
        import_document(db, policy, doc({**ACME, "limits": limits}))
    assert refused.value.field == named
    assert _counts(db) == (0, 0, 0)


def test_r10_importer_counts_the_pending_invitations_it_keeps(db: Store, policy: PolicySet) -> None:
    """Members plus pending invitations count (R10): an organization keeps its invitations
    across a re-import, so a re-import that would overfill it is refused whole."""
    import_document(db, policy, doc(ACME))
    now = datetime.now(UTC)
    pending = [
        {
            "id": f"inv-{i}",
            "org_id": "acme",
            "email": f"p{i}@acme.test",
            "org_role": "Member",
            "status": "pending",
            "token_hash": f"h{i}",
            "invited_by": "user:alice",
            "accepted_by": None,
            "expires_at": now + timedelta(days=1),
            "created_at": now,
            "updated_at": now,
        }
        for i in range(2)
    ]
    commit_rows_now(db, "acme", "test.invited", store.insert(Invitation, pending))
    before = revisions(db)
    with pytest.raises(LimitExceeded):  # 3 members + 2 pending > 4
        import_document(db, policy, doc({**ACME, "limits": {"members": 4}}, GLOBEX))
    assert revisions(db) == before
    import_document(db, policy, doc({**ACME, "limits": {"members": 5}}))
    assert len(revisions(db)) == len(before) + 1
