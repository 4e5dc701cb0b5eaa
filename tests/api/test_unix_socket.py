"""``listen = unix:/path``: the server on a Unix domain socket (a sidecar beside its callers,
no TCP port), with the file mode set before anyone is served; a socket left by a server that
is gone is replaced, one still answering is not taken over."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from orgauthz.api.server import App
from orgauthz.client import Client
from tests.conftest import settings_for
from tests.support.orgs import ACME_ONE_ADMIN, doc, seed


def _check(address: str) -> tuple[bool, bool]:
    with Client(address) as client:
        allowed = client.check("user:alice", workspace="acme-prod", scope="see_flows").allowed
        denied = client.check("user:mallory", workspace="acme-prod", scope="see_flows").allowed
    return allowed, denied


async def test_the_server_answers_on_a_unix_socket_with_its_file_mode(db, store_url, policy, tmp_path: Path) -> None:
    seed(db, policy, doc(ACME_ONE_ADMIN))
    path = tmp_path / "orgauthz.sock"
    app = App(settings_for(store_url, listen=f"unix:{path}", socket_mode="600"))
    await app.start()
    try:
        assert app.address == f"unix:{path}"
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert await asyncio.to_thread(_check, f"unix:{path}") == (True, False)
    finally:
        await app.stop()
    assert not path.exists()  # gRPC removes it when the server stops


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(store_url, tmp_path: Path) -> None:
    path = tmp_path / "orgauthz.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a killed server leaves behind
    stale.close()
    assert path.exists()
    app = App(settings_for(store_url, listen=f"unix:{path}"))
    await app.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660  # the default
        second = App(settings_for(store_url, listen=f"unix:{path}"))
        with pytest.raises(RuntimeError, match="another server listens there"):
            await second.start()
        await second.stop()
    finally:
        await app.stop()
    path.write_text("not a socket")
    third = App(settings_for(store_url, listen=f"unix:{path}"))
    with pytest.raises(RuntimeError, match="not a socket"):
        await third.start()
    await third.stop()
    assert path.read_text() == "not a socket"
    os.unlink(path)
