"""Who may call (SPEC §2): shared secret, mTLS, insecure development mode; the actor headers."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orgauthz.api.server import App
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import management_pb2 as pb
from tests.conftest import settings_for
from tests.management.support import As, code, create_org, error, head

C = grpc.StatusCode
TOKEN = "s3cret-token-for-tests"


@pytest.fixture
async def running(request: pytest.FixtureRequest, store_url: str) -> AsyncIterator[App]:
    """A server with the settings given by ``@pytest.mark.parametrize("running", [{...}], indirect=True)``."""
    app = App(settings_for(store_url, **request.param))
    await app.start()
    yield app
    await app.stop(0)


def _check() -> apb.CheckRequest:
    return apb.CheckRequest(subject="user:alice", organization="acme", scope="read:account")


@pytest.mark.parametrize("running", [{"insecure_dev": False, "auth_token": TOKEN}], indirect=True)
async def test_shared_secret(running: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        anonymous = As.of(ch)
        wrong = As.of(ch, "user:alice", token="not-the-token")
        good = As.of(ch, token=TOKEN)
        for stub in (anonymous, wrong):
            e = await error(stub.authz.Check(_check()))
            assert e.code() == C.UNAUTHENTICATED
            assert (
                await code(
                    stub.orgs.CreateOrganization(
                        pb.CreateOrganizationRequest(handle="acme", name="Acme", admin_user_id="alice")
                    )
                )
                == C.UNAUTHENTICATED
            )
            assert await code(stub.roles.ListScopes(pb.ListScopeCatalogRequest())) == C.UNAUTHENTICATED
        assert head(running) == 0
        await good.orgs.CreateOrganization(
            pb.CreateOrganizationRequest(id="acme", handle="acme", name="Acme", admin_user_id="alice")
        )
        assert (await good.authz.Check(_check())).allowed
        # Health stays open for probes.
        health = health_pb2_grpc.HealthStub(ch)
        r = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("running", [{"insecure_dev": False}], indirect=True)
async def test_no_credentials_configured_refuses_every_call(running: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        assert await code(As.of(ch, token="anything").authz.Check(_check())) == C.UNAUTHENTICATED
        r = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_insecure_dev_accepts_anyone_and_says_so(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    app = App(settings_for(store_url, insecure_dev=True))
    await app.start()
    try:
        assert any(r.levelname == "WARNING" and "INSECURE" in r.getMessage() for r in caplog.records)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            assert await code(As.of(ch).authz.Check(_check())) == C.OK
    finally:
        await app.stop(0)


async def test_actor_headers(app: App, channel: grpc.aio.Channel) -> None:
    await create_org(channel)
    req = pb.GetOrganizationRequest(organization="acme")
    assert await code(As.of(channel).orgs.GetOrganization(req)) == C.UNAUTHENTICATED
    for bad in ("alice", "user:", "user:a b", "group:x", "service_account:robot", "user:" + "x" * 129):
        e = await error(As.of(channel, bad).orgs.GetOrganization(req))
        assert e.code() == C.INVALID_ARGUMENT, bad
        assert (e.details() or "").startswith("x-orgauthz-actor:"), bad
    e = await error(As.of(channel, "user:alice", api_key="pnb_whatever").orgs.GetOrganization(req))
    assert e.code() == C.INVALID_ARGUMENT
    assert await code(As.of(channel, api_key="pnb_" + "x" * 300).orgs.GetOrganization(req)) == C.UNAUTHENTICATED
    assert await code(As.of(channel, "user:alice").orgs.GetOrganization(req)) == C.OK


# -- mTLS --------------------------------------------------------------------------------


@dataclass
class Pki:
    dir: Path

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=d,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=d,
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a
    client certificate from another CA, all generated here with the openssl CLI."""
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "rogue-ca")
    _leaf(d, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _leaf(d, "named", "ca", "subjectAltName=DNS:authz.test\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    return Pki(d)


def _tls_app(store_url: str, pki: Pki, *, client_ca: bool, token: str = "", cert: str = "server") -> App:
    """A server with ``<cert>.pem``; with ``client_ca``, only clients with a certificate of ``ca``."""
    extra = {"tls_client_ca": pki.dir / "ca.pem"} if client_ca else {}
    tls = {"tls_cert": pki.dir / f"{cert}.pem", "tls_key": pki.dir / f"{cert}.key", **extra}
    return App(settings_for(store_url, insecure_dev=False, **({"auth_token": token} if token else {}), **tls))


def _tls_channel(port: int, pki: Pki, client: str | None) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.read("ca.pem"),
        private_key=pki.read(f"{client}.key") if client else None,
        certificate_chain=pki.read(f"{client}.pem") if client else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")])


async def test_mtls(store_url: str, pki: Pki) -> None:
    app = _tls_app(store_url, pki, client_ca=True)
    await app.start()
    try:
        async with _tls_channel(app.port, pki, "client") as ch:
            await create_org(ch)
            assert (await As.of(ch).authz.Check(_check(), timeout=10)).allowed
        for client in (None, "rogue"):
            async with _tls_channel(app.port, pki, client) as ch:
                # The handshake is refused: the call never reaches a servicer.
                assert await code(As.of(ch).authz.Check(_check(), timeout=10)) == C.UNAVAILABLE
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            assert await code(As.of(ch).authz.Check(_check(), timeout=10)) == C.UNAVAILABLE
    finally:
        await app.stop(0)


async def test_server_tls_without_client_ca_still_needs_the_secret(store_url: str, pki: Pki) -> None:
    app = _tls_app(store_url, pki, client_ca=False, token=TOKEN)
    await app.start()
    try:
        async with _tls_channel(app.port, pki, None) as ch:
            assert await code(As.of(ch).authz.Check(_check(), timeout=10)) == C.UNAUTHENTICATED
            assert await code(As.of(ch, token=TOKEN).authz.Check(_check(), timeout=10)) == C.OK
    finally:
        await app.stop(0)


def _cli(pki: Pki, *args: str, client: str | None = "client") -> list[str]:
    """``args`` with TLS to a server holding ``server.pem``, as ``client`` (None: no client certificate)."""
    tls = ["--tls-ca", str(pki.dir / "ca.pem"), "--tls-server-name", "localhost"]
    if client:
        tls += ["--tls-cert", str(pki.dir / f"{client}.pem"), "--tls-key", str(pki.dir / f"{client}.key")]
    return [*args, *tls]


async def test_the_clis_speak_tls_and_mtls(store_url: str, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    """``orgauthz check``, ``orgauthz explain`` and the operator commands reach an mTLS server with ``--tls-ca``,
    ``--tls-cert`` and ``--tls-key``; in plaintext, or without a client certificate, the
    handshake is refused; a certificate without its key is a usage error."""
    from orgauthz.cli import main

    app = _tls_app(store_url, pki, client_ca=True, token=TOKEN)
    await app.start()
    server = ["--server", f"127.0.0.1:{app.port}", "--auth-token", TOKEN]

    async def run(*argv: str) -> tuple[int, str, str]:
        rc = await asyncio.to_thread(main, list(argv))
        out = capsys.readouterr()
        return rc, out.out, out.err

    try:
        boot = ["org", "bootstrap", "--id", "acme", "--handle", "acme", "--name", "Acme", "--admin-user", "alice"]
        rc, out, err = await run(*_cli(pki, *boot, *server))
        assert rc == 0, err
        check = ["check", "user:alice", "acme", "read:account", "--organization", *server]
        rc, out, _ = await run(*_cli(pki, *check))
        assert rc == 0
        assert out.startswith("ALLOWED")
        rc, out, _ = await run(*_cli(pki, "explain", "user:alice", "acme", "read:account", "--organization", *server))
        assert rc == 0
        assert "organization Owner" in out
        rc, out, _ = await run(*_cli(pki, "check", "user:nobody", "acme", "read:account", "--organization", *server))
        assert (rc, out.split()[0]) == (1, "DENIED")
        for argv in (check, _cli(pki, *check, client=None), _cli(pki, *check, client="rogue")):
            rc, _, err = await run(*argv)
            assert (rc, err.split(":")[:2]) == (2, ["error", " UNAVAILABLE"]), err
        rc, _, err = await run(*check, "--tls-cert", str(pki.dir / "client.pem"))
        assert rc == 2
        assert "needs both --tls-cert and --tls-key" in err
        rc, _, err = await run(*check, "--tls-ca", str(pki.dir / "missing.pem"))
        assert rc == 2
        assert "cannot read the CA file" in err
    finally:
        await app.stop(0)


async def test_the_clis_check_the_server_name_they_are_told(
    store_url: str, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server whose certificate names only ``authz.test``, reached at 127.0.0.1: refused
    unless ``--tls-server-name authz.test``; TLS options without ``--server`` are refused by
    ``explain``, which then reads the store and talks to no server."""
    from orgauthz.cli import main

    app = _tls_app(store_url, pki, client_ca=False, token=TOKEN, cert="named")
    await app.start()
    try:
        ca = ["--tls-ca", str(pki.dir / "ca.pem")]
        check = ["check", "user:nobody", "acme", "read:account", "--organization", "--server", f"127.0.0.1:{app.port}"]
        check += ["--auth-token", TOKEN, *ca]
        assert await asyncio.to_thread(main, check) == 2
        assert "UNAVAILABLE" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*check, "--tls-server-name", "authz.test"]) == 1  # DENIED: reached
        assert capsys.readouterr().out.startswith("DENIED")
    finally:
        await app.stop(0)
    explain = ["explain", "user:nobody", "acme", "read:account", "--organization", "--database-url", store_url, *ca]
    assert main(explain) == 2
    assert "--tls options are for --server" in capsys.readouterr().err
