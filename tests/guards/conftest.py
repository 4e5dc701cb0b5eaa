"""What the guard tests share: a real orgauthz server with the demo organization, API keys
for two of its subjects, a port nothing listens on, and a sidecar that never answers in time.

The guards do not touch the store, so the server runs on SQLite only.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from orgauthz.api.server import App
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc as pb_grpc
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spb_grpc
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upb_grpc
from tests.support.orgs import seed

DEMO = yaml.safe_load((Path(__file__).parents[2] / "examples" / "demo.yaml").read_text())
SLOW_S = 5.0


@pytest.fixture
def store_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "orgauthz.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def sidecar(app: App, policy: Any) -> str:
    """The target of a running server holding the demo organization (examples/demo.yaml)."""
    revision = seed(app.db, policy, DEMO)
    await app.feed.wait_for(revision, 10)
    return f"127.0.0.1:{app.port}"


@dataclass(frozen=True)
class Keys:
    bob: str  # pnu_: user:bob, a Developer in acme-prod, off prod-pool's ACL
    ci_bot: str  # pnb_: service_account:ci-bot, in the Platform team listed on prod-pool


@pytest.fixture
async def keys(sidecar: str, channel: grpc.aio.Channel) -> Keys:
    user_key = await upb_grpc.UserApiKeyServiceStub(channel).CreateUserApiKey(
        upb.CreateUserApiKeyRequest(user_id="bob", name="laptop"), metadata=(("x-orgauthz-actor", "user:bob"),)
    )
    rotated = await spb_grpc.ServiceAccountServiceStub(channel).RotateServiceAccountKey(
        spb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot"),
        metadata=(("x-orgauthz-actor", "user:alice"),),
    )
    assert user_key.api_key.startswith("pnu_")
    assert rotated.api_key.startswith("pnb_")
    return Keys(bob=user_key.api_key, ci_bot=rotated.api_key)


@pytest.fixture
def closed_port() -> str:
    """An address nothing listens on: the sidecar is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


class _Slow(pb_grpc.AuthorizationServiceServicer):  # type: ignore[misc]
    async def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        await asyncio.sleep(SLOW_S)
        return pb.CheckResponse(allowed=True)

    async def Authenticate(self, request: pb.AuthenticateRequest, context: Any) -> pb.AuthenticateResponse:
        await asyncio.sleep(SLOW_S)
        return pb.AuthenticateResponse(subject="user:bob")


@pytest.fixture
async def slow_sidecar() -> AsyncIterator[str]:
    """A sidecar that answers "allowed", but only after SLOW_S seconds."""
    server = grpc.aio.server()
    pb_grpc.add_AuthorizationServiceServicer_to_server(_Slow(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)
