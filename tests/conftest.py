"""Shared fixtures: real SQLite files, a throw-away PostgreSQL cluster, redis-server,
and an in-process orgauthz server with a gRPC channel to it.

``store_url`` is parametrized over both databases: a test that takes it (directly or
through ``app``) runs against SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from orgauthz.api.server import App
from orgauthz.config import Settings
from orgauthz.domain.policy import PolicySet, load_policy
from orgauthz.store.base import Store
from orgauthz.store.db import open_store
from orgauthz.v1 import authorization_pb2_grpc
from tests.support.services import PgCluster, RedisServer, pg_cluster, redis_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def policy() -> PolicySet:
    return load_policy()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    with pg_cluster() as cluster:
        template = open_store(cluster.url("postgres"))
        cluster.psql("CREATE DATABASE orgauthz_template")
        template.dispose()
        migrated = open_store(cluster.url("orgauthz_template"))
        migrated.migrate()
        migrated.dispose()
        yield cluster


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    db = open_store(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A fresh, migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "orgauthz.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    cluster: PgCluster = request.getfixturevalue("pg")
    name = f"t{next(_counter)}_{abs(hash(request.node.nodeid)) % 10**8}"
    cluster.psql(f"CREATE DATABASE {name} TEMPLATE orgauthz_template")
    yield cluster.url(name)
    cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(store_url: str) -> Iterator[Store]:
    database = open_store(store_url)
    yield database
    database.dispose()


def settings_for(store_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "metrics_listen": "",
        "database_url": store_url,
        "insecure_dev": True,
        "poll_interval_s": 0.05,
        # One test process starts hundreds of servers: freezing would keep their cycles for
        # good. tests/decisions/test_gc.py covers the freeze itself.
        "gc_freeze": False,
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[App]:
    """A running server on an empty, migrated store (SQLite and PostgreSQL)."""
    server = App(settings_for(store_url))
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


@pytest.fixture
def authz(channel: grpc.aio.Channel) -> authorization_pb2_grpc.AuthorizationServiceStub:
    return authorization_pb2_grpc.AuthorizationServiceStub(channel)
