"""A store written by the previous release opens with this one (R21, migration 0005).

The previous release is the last commit with the previous scope catalog: its code and policy
files are taken from git, its own ``orgauthz import`` writes a SQLite store and a PostgreSQL
one holding custom roles named with the old ids, and this release migrates them and decides
on them. A clone without that commit fails here loudly (CI clones the whole history).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orgauthz.domain.policy import load_policy
from orgauthz.engine.engine import Engine
from orgauthz.store.db import open_store
from orgauthz.store.models import CustomRole, Membership
from tests.support.services import PgCluster

PREVIOUS_RELEASE = "6f268cc30e77"  # main before Prefect's ids (issue 17)
REPO = Path(__file__).resolve().parents[2]

# Custom roles written with the previous catalog's ids, and what migration 0005 makes of them.
OLD_DOC = textwrap.dedent(
    """
    organizations:
      - id: up
        handle: up
        name: Upgrade Inc.
        members:
          - {user: ada, email: ada@up.test, role: Admin}
          - {user: zed, email: zed@up.test, role: Admin}
          - {user: sec, email: sec@up.test, role: Member}
          - {user: ops, email: ops@up.test, role: Member}
          - {user: wrk, email: wrk@up.test, role: Member}
          - {user: aud, email: aud@up.test, role: up-sa-admin}
        custom_roles:
          - {id: up-secrets, name: Secrets, level: workspace, scopes: [manage_secret_blocks]}
          - {id: up-settings, name: Settings, level: workspace,
             scopes: [manage_workspace_settings, manage_workspace_default_role]}
          - {id: up-worker, name: Worker plus, level: workspace, scopes: [submit_flow_runs, write_events]}
          - {id: up-sa-admin, name: SA admin, level: organization, inherits: Member,
             scopes: [create:service_account, delete:invitation, update:workspace, create:account_role]}
        workspaces:
          - id: up-ws
            handle: ws
            access:
              - {subject: "user:sec", role: up-secrets}
              - {subject: "user:ops", role: up-settings}
              - {subject: "user:wrk", role: up-worker}
    """
)
MIGRATED = {
    "up-secrets": ["manage_blocks"],
    "up-settings": ["manage_workspace_users", "write_workspace_settings"],
    "up-worker": ["manage_events", "see_work_pools", "see_work_queues", "write_workers"],
    "up-sa-admin": [
        "administrate:workspace",
        "create:account_role",
        "create:bot",
        "create:workspace_role",
        "update:invitation",
    ],
}


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's ``src`` with its policy files where its package looks for them."""
    root = tmp_path_factory.mktemp("previous")
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], capture_output=True, check=False
    )
    assert found.returncode == 0, f"commit {PREVIOUS_RELEASE} is not in this clone: clone the whole history"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "src", "policies"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    shutil.move(root / "policies", root / "src" / "orgauthz" / "policies")
    return root / "src"


def _import_with_previous_release(src: Path, tmp_path: Path, url: str) -> None:
    doc = tmp_path / "old.yaml"
    doc.write_text(OLD_DOC, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGAUTHZ_")} | {"PYTHONPATH": str(src)}
    code = "import sys; from orgauthz.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "import", str(doc), "--database-url", url],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def _check_upgraded(url: str) -> None:
    db = open_store(url)
    try:
        db.migrate()
        with db.read() as s:
            stored = {r.id: list(r.scopes) for r in s.scalars(select(CustomRole).where(CustomRole.org_id == "up"))}
        assert stored == MIGRATED
        with db.read() as s:
            roles = dict(
                s.execute(select(Membership.user_id, Membership.org_role).where(Membership.org_id == "up")).all()
            )
        # R3: the earliest Admin (joined together: the first by user id) is the Owner; the other stays Admin.
        assert (roles["ada"], roles["zed"]) == ("Owner", "Admin")
        engine = Engine(load_policy(), db)
        await engine.start()
        ws = engine.resolve(workspace="up-ws")
        org = engine.resolve(organization="up")
        assert ws is not None
        assert org is not None
        assert await engine.ensure_loaded("up")
        # The old manage_secret_blocks read and changed secrets: manage_blocks does both.
        assert engine.decide("user:sec", ws, "see_secret_blocks")
        assert engine.decide("user:sec", ws, "manage_blocks")
        # The old manage_workspace_settings changed settings; Prefect's deletes the workspace.
        assert engine.decide("user:ops", ws, "write_workspace_settings")
        assert not engine.decide("user:ops", ws, "manage_workspace_settings")
        assert engine.decide("user:ops", ws, "manage_workspace_users")
        # submit_flow_runs polled work queues of a work pool.
        for scope in ("write_workers", "see_work_pools", "see_work_queues", "manage_events"):
            assert engine.decide("user:wrk", ws, scope), scope
        # Organization permissions: renamed, and custom workspace roles now *:workspace_role.
        for perm in ("create:bot", "update:invitation", "administrate:workspace", "create:workspace_role"):
            assert engine.decide("user:aud", org, perm), perm
        assert not engine.decide("user:aud", org, "delete:bot")
    finally:
        db.dispose()


async def test_a_sqlite_store_of_the_previous_release_upgrades(previous_release: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _import_with_previous_release(previous_release, tmp_path, url)
    await _check_upgraded(url)


@pytest.mark.postgres
async def test_a_postgres_store_of_the_previous_release_upgrades(
    previous_release: Path, tmp_path: Path, pg: PgCluster
) -> None:
    pg.psql("DROP DATABASE IF EXISTS upgrade_0005 WITH (FORCE)")
    pg.psql("CREATE DATABASE upgrade_0005")
    try:
        _import_with_previous_release(previous_release, tmp_path, pg.url("upgrade_0005"))
        await _check_upgraded(pg.url("upgrade_0005"))
    finally:
        pg.psql("DROP DATABASE IF EXISTS upgrade_0005 WITH (FORCE)")


def test_migration_0005_downgrades_to_ids_the_previous_release_knows(previous_release: Path, tmp_path: Path) -> None:
    """Rolling the release back leaves only ids the previous code knows (losing what only the
    new catalog can say: a rollback is not an undo)."""
    from alembic import command
    from alembic.config import Config

    from orgauthz.store.db import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    _import_with_previous_release(previous_release, tmp_path, url)
    db = open_store(url)
    try:
        db.migrate()
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        with db.read() as s:
            stored = {r.id: list(r.scopes) for r in s.scalars(select(CustomRole).where(CustomRole.org_id == "up"))}
            owners = s.scalar(select(func.count()).select_from(Membership).where(Membership.org_role == "Owner"))
    finally:
        db.dispose()
    assert owners == 0
    assert stored == {
        "up-secrets": ["manage_blocks"],
        "up-settings": ["manage_workspace_settings", "manage_workspace_users"],
        "up-worker": ["see_work_pools", "write_events", "write_workers"],
        "up-sa-admin": ["create:account_role", "create:service_account", "delete:invitation", "update:workspace"],
    }
