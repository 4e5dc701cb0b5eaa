"""The organizations the tests seed, in the ``orgauthz import`` format, and how to seed them.

Each document is exactly what the tests that use it depend on (members, roles, grants,
limits): add a new one rather than change one in use. Organizations with the same id that
differ are kept apart by name (``ACME`` of the store contract, ``ACME_RULES`` of the rule
cases, ...).
"""

from __future__ import annotations

import copy
from typing import Any

from orgauthz.domain.policy import PolicySet
from orgauthz.store.base import Store
from orgauthz.store.importer import import_document


def doc(*orgs: dict[str, Any]) -> dict[str, Any]:
    """An import document of copies of ``orgs``."""
    return {"organizations": [copy.deepcopy(o) for o in orgs]}


def seed(db: Store, policy: PolicySet, document: dict[str, Any]) -> int:
    """Imports ``document`` (the ``orgauthz import`` format); returns the last revision."""
    return import_document(db, policy, document).revision


# -- the store contract's pair (tests/store): custom roles at both levels, a workspace whose
# default role is a custom role, a user (bob) in both organizations -------------------------

ACME: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme Inc.",
    "limits": {"members": 50, "service_accounts": 10, "workspaces": 20},
    "members": [
        {"user": "alice", "email": "Alice@Acme.test", "role": "Admin"},
        {"user": "bob", "role": "Member"},
        {"user": "carol", "role": "acme-auditor"},
    ],
    "service_accounts": [
        {"id": "ci-bot", "name": "CI bot", "role": "Member"},
        {"id": "audit-bot", "name": "Audit bot", "role": "acme-auditor"},
    ],
    "custom_roles": [
        {
            "id": "acme-deployer",
            "name": "Deployer",
            "level": "workspace",
            "inherits": "Runner",
            "scopes": ["manage_deployments", "see_secret_blocks"],
        },
        {
            "id": "acme-auditor",
            "name": "Auditor",
            "level": "organization",
            "inherits": "Member",
            "scopes": ["read:audit_event"],
        },
        {"id": "acme-bare", "name": "Bare", "level": "workspace", "scopes": []},
    ],
    "workspaces": [
        {
            "id": "acme-prod",
            "handle": "production",
            "name": "Production",
            "default_role": "Viewer",
            "access": [
                {"subject": "user:bob", "role": "Developer"},
                {"subject": "service_account:ci-bot", "role": "acme-deployer"},
            ],
        },
        {"id": "acme-sandbox", "handle": "sandbox", "access": [{"subject": "user:carol", "role": "Owner"}]},
        {"id": "acme-vault", "handle": "vault", "default_role": "acme-bare"},
    ],
}
GLOBEX: dict[str, Any] = {
    "id": "globex",
    "handle": "globex",
    "name": "Globex",
    "members": [{"user": "bob", "role": "Admin"}],
    "workspaces": [{"id": "gx-main", "handle": "main"}],
}


# -- the rule cases (tests/decisions/test_rules.py): the members, grants and custom roles the
# R-rule cases ask about, and a ladder workspace with one user per built-in workspace role --

ACME_RULES: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme Inc.",
    "members": [
        {"user": "alice", "email": "alice@acme.test", "role": "Admin"},
        {"user": "bob", "role": "Member"},
        {"user": "carol", "role": "Member"},
        {"user": "dave", "role": "acme-auditor"},
        {"user": "erin", "role": "Member"},
        {"user": "sam", "role": "Member"},
        {"user": "tom", "role": "Member"},
        *({"user": f"l-{r.lower()}", "role": "Member"} for r in ("Viewer", "Runner", "Developer", "Owner", "Worker")),
    ],
    "service_accounts": [
        {"id": "ci-bot", "name": "CI bot", "role": "Member"},
        {"id": "audit-bot", "name": "Audit bot", "role": "acme-auditor"},
    ],
    "custom_roles": [
        {
            "id": "acme-deployer",
            "name": "Deployer",
            "level": "workspace",
            "inherits": "Runner",
            "scopes": ["manage_deployments", "see_secret_blocks"],
        },
        {"id": "acme-secrets", "name": "Secret reader", "level": "workspace", "scopes": ["see_secret_blocks"]},
        {"id": "acme-shipper", "name": "Shipper", "level": "workspace", "scopes": ["manage_deployments"]},
        {
            "id": "acme-auditor",
            "name": "Auditor",
            "level": "organization",
            "inherits": "Member",
            "scopes": ["read:audit_event"],
        },
    ],
    "workspaces": [
        {
            "id": "acme-prod",
            "handle": "production",
            "default_role": "Viewer",
            "access": [
                {"subject": "user:bob", "role": "Developer"},
                {"subject": "user:carol", "role": "Worker"},
                {"subject": "service_account:ci-bot", "role": "acme-deployer"},
            ],
        },
        {
            "id": "acme-sandbox",
            "handle": "sandbox",
            "access": [
                {"subject": "user:carol", "role": "Owner"},
                {"subject": "user:sam", "role": "acme-secrets"},
                {"subject": "user:tom", "role": "acme-shipper"},
            ],
        },
        {"id": "acme-vault", "handle": "vault", "default_role": "acme-secrets", "access": []},
        {"id": "acme-empty", "handle": "empty"},
        {
            "id": "acme-ladder",
            "handle": "ladder",
            "access": [
                {"subject": f"user:l-{r.lower()}", "role": r}
                for r in ("Viewer", "Runner", "Developer", "Owner", "Worker")
            ],
        },
    ],
}
GLOBEX_RULES: dict[str, Any] = {
    "id": "globex",
    "handle": "globex",
    "name": "Globex",
    "members": [{"user": "zed", "role": "Admin"}, {"user": "bob", "role": "Member"}],
    "workspaces": [{"id": "gx-main", "handle": "main", "default_role": "Owner"}],
}

# -- one Admin, one workspace (tests/decisions/test_gc.py, test_batch_cache.py) -------------
ACME_ONE_ADMIN: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme",
    "members": [{"user": "alice", "email": "alice@acme.test", "role": "Admin"}],
    "workspaces": [{"id": "acme-prod", "handle": "prod", "name": "Prod", "access": []}],
}

# -- two members and a service account granted Runner (tests/bad_input/test_authorization_requests.py)
ACME_SMALL: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme",
    "members": [{"user": "alice", "role": "Admin"}, {"user": "bob", "role": "Member"}],
    "service_accounts": [{"id": "ci-bot", "name": "CI", "role": "Member"}],
    "workspaces": [
        {
            "id": "acme-prod",
            "handle": "prod",
            "default_role": "Viewer",
            "access": [{"subject": "service_account:ci-bot", "role": "Runner"}],
        },
        {"id": "acme-dev", "handle": "dev"},
    ],
}

# -- the management tests ---------------------------------------------------------------------

# tests/management/invitations/test_invitations.py: small limits, an inviter custom role.
ACME_INVITATIONS: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme Inc.",
    "limits": {"members": 6, "service_accounts": 3, "workspaces": 5},
    "members": [
        {"user": "alice", "email": "alice@acme.test", "role": "Admin"},
        {"user": "bob", "email": "bob@acme.test", "role": "Member"},
        {"user": "carol", "email": "carol@acme.test", "role": "inviter"},
    ],
    "custom_roles": [
        {
            "id": "inviter",
            "name": "Inviter",
            "level": "organization",
            "inherits": "Member",
            "scopes": ["create:invitation", "read:invitation"],
        }
    ],
    "workspaces": [{"id": "acme-prod", "handle": "prod", "default_role": "Viewer"}],
}
# The other organization of the invitation and service-account tests.
GLOBEX_ONE_ADMIN: dict[str, Any] = {
    "id": "globex",
    "handle": "globex",
    "name": "Globex",
    "members": [{"user": "gina", "email": "gina@globex.test", "role": "Admin"}],
}
# tests/management/service_accounts/test_service_accounts.py: three service accounts at most.
ACME_SERVICE_ACCOUNTS: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme Inc.",
    "limits": {"members": 20, "service_accounts": 3, "workspaces": 5},
    "members": [
        {"user": "alice", "email": "alice@acme.test", "role": "Admin"},
        {"user": "bob", "email": "bob@acme.test", "role": "Member"},
    ],
    "custom_roles": [
        {"id": "auditor", "name": "Auditor", "level": "organization", "scopes": ["read:account", "read:audit_event"]}
    ],
    "workspaces": [{"id": "acme-prod", "handle": "prod", "default_role": "Viewer"}],
}
# tests/management/invitations/test_outbox.py: an Admin who invites.
ACME_MAIL: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme Inc.",
    "members": [{"user": "alice", "email": "alice@acme.test", "role": "Admin"}],
}

# -- an Admin and 30 members (tests/faults/test_write_path_faults.py, tests/security/test_secrets.py)

ACME_FAULTS: dict[str, Any] = {
    "id": "acme",
    "handle": "acme",
    "name": "Acme",
    "limits": {"members": 500, "workspaces": 5},
    "members": [
        {"user": "admin", "email": "admin@acme.test", "role": "Admin"},
        *({"user": f"u{i}", "role": "Member"} for i in range(30)),
    ],
    "workspaces": [{"id": f"w{i}", "handle": f"w{i}"} for i in range(3)],
}


# -- the world of the bad-input and isolation tests (built by tests/support/rpcs.py) ----------


def org_doc(o: str) -> dict[str, Any]:
    """One organization in the ``orgauthz import`` format; every id is prefixed by ``o``."""
    return {
        "id": o,
        "handle": o,
        "name": f"Org {o}",
        "limits": {"members": 50, "service_accounts": 10, "workspaces": 10},
        "members": [
            {"user": f"{o}-admin", "email": f"admin@{o}.test", "role": "Admin"},
            {"user": f"{o}-admin2", "email": f"admin2@{o}.test", "role": "Admin"},
            {"user": f"{o}-member", "email": f"member@{o}.test", "role": "Member"},
            {"user": f"{o}-owner", "email": f"owner@{o}.test", "role": "Member"},
            {"user": f"{o}-manager", "email": f"manager@{o}.test", "role": f"{o}-orgrole"},
        ],
        "custom_roles": [
            {
                "id": f"{o}-wsrole",
                "name": "Deployer",
                "level": "workspace",
                "inherits": "Viewer",
                "scopes": ["run_deployments"],
            },
            {
                "id": f"{o}-orgrole",
                "name": "People manager",
                "level": "organization",
                "inherits": "Member",
                "scopes": ["create:invitation", "read:invitation", "update:account_membership"],
            },
            {"id": f"{o}-unused", "name": "Unused", "level": "workspace", "scopes": ["see_flows"]},
        ],
        "teams": [
            {"id": f"{o}-team1", "name": "Platform", "members": [f"user:{o}-member", f"user:{o}-owner"]},
            {"id": f"{o}-team2", "name": "Data", "members": [f"user:{o}-manager"]},
        ],
        "workspaces": [
            {
                "id": f"{o}-ws1",
                "handle": "prod",
                "default_role": "Viewer",
                "access": [
                    {"subject": f"user:{o}-owner", "role": "Owner"},
                    {"subject": f"user:{o}-member", "role": "Developer"},
                ],
                # R26, R27: a work pool only the Platform team may run, and a deployment on it.
                "acls": [
                    {"object": "work_pool:p1", "entries": [{"subject": f"team:{o}-team1", "level": "run"}]},
                    {"object": "deployment:d1", "entries": [{"subject": f"user:{o}-member", "level": "view"}]},
                ],
                "deployment_pools": {"d1": "p1"},
            },
            {"id": f"{o}-ws2", "handle": "staging", "access": [{"subject": f"user:{o}-member", "role": f"{o}-wsrole"}]},
        ],
    }


# -- the replicas' stream (tests/replicas, tests/faults): Acme's members and workspaces, and an
# organization that shares no id with it -----------------------------------------------------

REPLICAS_ORG = "acme"
REPLICAS_USERS = [f"u{i}" for i in range(24)]
REPLICAS_WORKSPACES = [f"w{i}" for i in range(4)]
REPLICAS_SEED: dict[str, Any] = {
    "organizations": [
        {
            "id": REPLICAS_ORG,
            "handle": REPLICAS_ORG,
            "name": "Acme",
            "limits": {"members": 100, "workspaces": 10},
            "members": [{"user": "admin", "role": "Admin"}, *({"user": u, "role": "Member"} for u in REPLICAS_USERS)],
            "workspaces": [{"id": w, "handle": w} for w in REPLICAS_WORKSPACES],
        },
        {
            "id": "other",
            "handle": "other",
            "name": "Other",
            "members": [{"user": "zed", "role": "Member"}],
            "workspaces": [{"id": "o0", "handle": "o0", "access": [{"subject": "user:zed", "role": "Viewer"}]}],
        },
    ],
}
