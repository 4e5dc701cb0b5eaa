"""Replicas starting together on an empty PostgreSQL database migrate one at a time."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import inspect

from orgauthz.store.db import open_store
from tests.support.services import PgCluster

_n = itertools.count()


@pytest.mark.postgres
def test_concurrent_migrations_on_an_empty_database_all_succeed(pg: PgCluster) -> None:
    name = f"migrate_race_{next(_n)}"
    pg.psql(f"CREATE DATABASE {name}")
    # lock_timeout: a regression fails within seconds instead of waiting on a lock forever.
    dbs = [open_store(pg.url(name) + "?options=-c%20lock_timeout%3D20000") for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda db: db.migrate(), dbs))  # raises if any replica failed
        tables = set(inspect(dbs[0].engine).get_table_names())
        assert {"changes", "organizations", "workspace_grants", "alembic_version"} <= tables
    finally:
        for db in dbs:
            db.dispose()
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_the_newest_schema_has_no_write_expectation_function(pg: PgCluster) -> None:
    """Migration 0003 drops migration 0002's orgauthz_expect: no write path calls it."""
    name = f"migrate_expect_{next(_n)}"
    pg.psql(f"CREATE DATABASE {name}")
    db = open_store(pg.url(name))
    try:
        db.migrate()
        with db.engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT count(*) FROM pg_proc WHERE proname = 'orgauthz_expect'").scalar()
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        assert (found, version) == (0, "0008")
    finally:
        db.dispose()
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
