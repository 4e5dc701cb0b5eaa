"""Fixtures for the replica tests: a seeded PostgreSQL database, replica processes, writers.

The topology is docker-compose.yml's, as local processes: two ``orgauthz serve`` on one
PostgreSQL database and one redis-server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orgauthz.domain.policy import PolicySet
from orgauthz.store.db import open_store
from orgauthz.store.importer import import_document
from tests.replicas.harness import Replica
from tests.support.orgs import REPLICAS_SEED
from tests.support.services import PgCluster, pg_cluster

_names = itertools.count()


def seed_database(url: str, policy: PolicySet) -> int:
    db = open_store(url)
    try:
        return import_document(db, policy, REPLICAS_SEED).revision
    finally:
        db.dispose()


@pytest.fixture
def replica_db(pg: PgCluster, policy: PolicySet) -> Iterator[tuple[str, int]]:
    """A migrated, seeded database on the shared test cluster: (url, seed revision)."""
    name = f"replicas{next(_names)}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    url = pg.url(name)
    yield url, seed_database(url, policy)
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def own_pg(policy: PolicySet) -> Iterator[tuple[PgCluster, str, int]]:
    """A cluster of its own, for tests that stop PostgreSQL: (cluster, url, seed revision)."""
    with pg_cluster() as cluster:
        cluster.psql("CREATE DATABASE orgauthz")
        url = cluster.url("orgauthz")
        db = open_store(url)
        db.migrate()
        db.dispose()
        yield cluster, url, seed_database(url, policy)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    """``make(name, database_url, redis_url, **env)`` starts a replica; all are stopped at the end."""
    started: list[Replica] = []

    def make(name: str, database_url: str, redis_url: str = "", **env: Any) -> Replica:
        r = Replica(name, database_url, redis_url, tmp_path, env={k.upper(): str(v) for k, v in env.items()})
        started.append(r)
        r.start()
        return r

    yield make
    for r in started:
        r.stop()
