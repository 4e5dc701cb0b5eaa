"""Envoy's external authorization (SPEC §6, docs/envoy.md), asked with Envoy's own stubs
(``xds-protos``) of a real server seeded with examples/demo.yaml, on SQLite and PostgreSQL.

The server authenticates its callers with a shared secret, as in production, so the subject
header the proxy sets is trusted; the bearer-key tests send none. What the sidecar answers:
OK with ``x-orgauthz-subject`` for the upstream; 403 ``denied`` (the same bytes whether the
workspace or object exists), 403 ``no route``, 401 ``unauthenticated``, 400 ``bad request``,
503 ``unavailable`` (fail closed) with ``x-orgauthz-reason``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import attribute_context_pb2 as attr
from envoy.service.auth.v3 import external_auth_pb2 as ext
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from prometheus_client import generate_latest

from orgauthz.api.server import App
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upbg
from tests.conftest import settings_for
from tests.support.orgs import seed

DEMO = yaml.safe_load((Path(__file__).parents[2] / "examples" / "demo.yaml").read_text())
TOKEN = "ext-authz-test-secret"
CALLER = (("authorization", f"Bearer {TOKEN}"),)
SUBJECT = "x-auth-subject"  # the header the proxy sets, as configured below
WS = "/api/accounts/acme/workspaces"
OK, DENIED = grpc.StatusCode.OK.value[0], grpc.StatusCode.PERMISSION_DENIED.value[0]


async def _started(store_url: str, policy: Any, **overrides: Any) -> App:
    app = App(settings_for(store_url, ext_authz=True, **overrides))
    await app.start()
    assert app.db is not None
    assert app.feed is not None
    await app.feed.wait_for(seed(app.db, policy, DEMO), 10)
    return app


@pytest.fixture
async def gate(store_url: str, policy: Any) -> AsyncIterator[App]:
    """The demo organization behind a server that requires the shared secret."""
    app = await _started(store_url, policy, insecure_dev=False, auth_token=TOKEN, ext_authz_subject_header=SUBJECT)
    yield app
    await app.stop(0)


@pytest.fixture
async def chan(gate: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gate.port}") as ch:
        yield ch


def request(method: str, path: str, **headers: str) -> ext.CheckRequest:
    http = attr.AttributeContext.HttpRequest(method=method, path=path, headers=headers, host="api.example")
    return ext.CheckRequest(attributes=attr.AttributeContext(request=attr.AttributeContext.Request(http=http)))


async def ask(chan: grpc.aio.Channel, method: str, path: str, subject: str = "", **headers: str) -> ext.CheckResponse:
    if subject:
        headers[SUBJECT] = subject
    stub = ext_grpc.AuthorizationStub(chan)
    return await stub.Check(request(method, path, **headers), metadata=CALLER, timeout=10)


def upstream_subject(resp: ext.CheckResponse) -> str:
    assert resp.status.code == OK, resp
    assert resp.HasField("ok_response"), resp
    (header,) = resp.ok_response.headers
    assert header.header.key == "x-orgauthz-subject"
    return str(header.header.value)


def refusal(resp: ext.CheckResponse) -> tuple[int, int, str]:
    """(status code, HTTP status, reason header) of a refused request."""
    assert resp.HasField("denied_response"), resp
    reasons = [h.header.value for h in resp.denied_response.headers if h.header.key == "x-orgauthz-reason"]
    assert len(reasons) == 1, resp
    assert resp.denied_response.body == f"{reasons[0]}\n", resp
    return resp.status.code, resp.denied_response.status.code, reasons[0]


DEPLOYMENT = f"{WS}/acme-prod/deployments/adhoc"


async def test_allowed_request_names_the_subject_for_the_upstream(chan) -> None:
    # bob is a Developer in acme-prod: he reads a deployment and starts a flow run.
    assert upstream_subject(await ask(chan, "GET", DEPLOYMENT, "user:bob")) == "user:bob"
    assert upstream_subject(await ask(chan, "POST", f"{DEPLOYMENT}/create_flow_run?x=1", "user:bob")) == "user:bob"
    # The default role Viewer (R17) lets carol read it, not run it.
    assert upstream_subject(await ask(chan, "GET", DEPLOYMENT, "user:carol")) == "user:carol"
    assert refusal(await ask(chan, "POST", f"{DEPLOYMENT}/create_flow_run", "user:carol")) == (DENIED, 403, "denied")


async def test_deny_is_403_and_the_same_whether_the_target_exists(chan) -> None:
    existing = await ask(chan, "PATCH", DEPLOYMENT, "user:carol")
    assert refusal(existing) == (DENIED, 403, "denied")
    for path in (
        f"{WS}/acme-nowhere/deployments/adhoc",  # no such workspace
        f"{WS}/acme-prod/deployments/no-such-deployment",  # no such object: same answer
    ):
        again = await ask(chan, "PATCH", path, "user:carol")
        assert again.SerializeToString(deterministic=True) == existing.SerializeToString(deterministic=True), path
    outsider = await ask(chan, "GET", DEPLOYMENT, "user:mallory")  # not a member of acme
    assert outsider.SerializeToString(deterministic=True) == existing.SerializeToString(deterministic=True)


async def test_r26_the_work_pool_acl_decides_who_runs_its_deployments(chan) -> None:
    # nightly-etl runs on prod-pool, whose ACL gives its run level to team platform only.
    nightly = f"{WS}/acme-prod/deployments/nightly-etl/create_flow_run"
    assert refusal(await ask(chan, "POST", nightly, "user:bob")) == (DENIED, 403, "denied")
    assert upstream_subject(await ask(chan, "POST", f"{DEPLOYMENT}/create_flow_run", "user:bob")) == "user:bob"
    assert upstream_subject(await ask(chan, "POST", nightly, "user:alice")) == "user:alice"  # the Owner
    # The ACL governs viewing the pool too: bob is not listed, the Owner always sees it.
    pool = f"{WS}/acme-prod/work_pools/prod-pool"
    assert refusal(await ask(chan, "GET", pool, "user:bob")) == (DENIED, 403, "denied")
    assert upstream_subject(await ask(chan, "GET", pool, "user:alice")) == "user:alice"


async def test_unmatched_route_is_denied_by_default(chan) -> None:
    for method, path in (
        ("GET", "/api/health"),
        ("DELETE", DEPLOYMENT),  # the path of a route, not its method
        ("GET", f"{DEPLOYMENT}/extra"),
        ("GET", "/"),
    ):
        assert refusal(await ask(chan, method, path, "user:alice")) == (DENIED, 403, "no route"), (method, path)


async def test_bearer_key_of_a_user_or_a_service_account_is_the_subject(chan) -> None:
    users = upbg.UserApiKeyServiceStub(chan)
    bob = await users.CreateUserApiKey(
        upb.CreateUserApiKeyRequest(user_id="bob", name="laptop"),
        metadata=(*CALLER, ("x-orgauthz-actor", "user:bob")),
    )
    accounts = spbg.ServiceAccountServiceStub(chan)
    bot = await accounts.RotateServiceAccountKey(
        spb.RotateServiceAccountKeyRequest(organization="acme", id="ci-bot"),
        metadata=(*CALLER, ("x-orgauthz-actor", "user:alice")),
    )
    resp = await ask(chan, "GET", DEPLOYMENT, authorization=f"Bearer {bob.api_key}")
    assert upstream_subject(resp) == "user:bob"
    # ci-bot is a Deployer and in team platform: it may run nightly-etl; bob may not.
    nightly = f"{WS}/acme-prod/deployments/nightly-etl/create_flow_run"
    assert upstream_subject(await ask(chan, "POST", nightly, authorization=f"bearer {bot.api_key}")) == (
        "service_account:ci-bot"
    )
    assert refusal(await ask(chan, "POST", nightly, authorization=f"Bearer {bob.api_key}"))[2] == "denied"
    # In acme-sandbox ci-bot is a Runner through team platform: it may not change a deployment.
    sandbox = f"{WS}/acme-sandbox/deployments/adhoc"
    assert upstream_subject(await ask(chan, "GET", sandbox, authorization=f"Bearer {bot.api_key}"))
    assert refusal(await ask(chan, "PATCH", sandbox, authorization=f"Bearer {bot.api_key}"))[2] == "denied"
    wrong = bob.api_key[:-4] + ("AAAA" if not bob.api_key.endswith("AAAA") else "BBBB")
    assert refusal(await ask(chan, "GET", DEPLOYMENT, authorization=f"Bearer {wrong}")) == (16, 401, "unauthenticated")


async def test_no_subject_is_401_and_another_authorization_scheme_is_not_a_key(chan) -> None:
    assert refusal(await ask(chan, "GET", DEPLOYMENT)) == (16, 401, "unauthenticated")
    assert refusal(await ask(chan, "GET", DEPLOYMENT, authorization="Bearer eyJhbGciOi.x.y")) == (
        16,
        401,
        "unauthenticated",
    )
    assert refusal(await ask(chan, "GET", DEPLOYMENT, authorization="Basic Ym9iOmJvYg==")) == (
        16,
        401,
        "unauthenticated",
    )


async def test_proxy_subject_header_needs_an_authenticated_caller(gate: App, chan, store_url, policy) -> None:
    # Without the shared secret the call itself is refused: Envoy (failure_mode_allow: false) denies.
    stub = ext_grpc.AuthorizationStub(chan)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Check(request("GET", DEPLOYMENT, **{SUBJECT: "user:alice"}), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # A server that authenticates nobody (insecure development mode) never reads the header.
    insecure = await _started(store_url, policy, ext_authz_subject_header=SUBJECT)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{insecure.port}") as ch:
            resp = await ext_grpc.AuthorizationStub(ch).Check(
                request("GET", DEPLOYMENT, **{SUBJECT: "user:alice"}), timeout=10
            )
        assert refusal(resp) == (16, 401, "unauthenticated")
    finally:
        await insecure.stop(0)


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        pytest.param("GET", f"{WS}/acme-prod/deployments/../work_pools/prod-pool", {}, id="dot-dot segment"),
        pytest.param("GET", f"{WS}//acme-prod/deployments/adhoc", {}, id="empty segment"),
        pytest.param("GET", f"{WS}/acme-prod/deployments/ad%2Fhoc", {}, id="id a variable cannot hold"),
        pytest.param("GET", "deployments/adhoc", {}, id="relative path"),
        pytest.param("GET", "", {}, id="no path"),
        pytest.param("", DEPLOYMENT, {}, id="no method"),
        pytest.param("GET", DEPLOYMENT, {SUBJECT: "bob"}, id="malformed subject header"),
        pytest.param("GET", DEPLOYMENT, {SUBJECT: "user:bob,user:alice"}, id="subject header given twice"),
    ],
)
async def test_malformed_request_is_400(chan, method: str, path: str, headers: dict[str, str]) -> None:
    headers = {SUBJECT: "user:alice", **headers}
    stub = ext_grpc.AuthorizationStub(chan)
    resp = await stub.Check(request(method, path, **headers), metadata=CALLER, timeout=10)
    assert refusal(resp) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], 400, "bad request")


async def test_key_and_subject_header_together_are_400(chan) -> None:
    resp = await ask(chan, "GET", DEPLOYMENT, "user:alice", authorization="Bearer pnu_" + "a" * 40)
    assert refusal(resp)[1:] in {(400, "bad request"), (401, "unauthenticated")}


async def test_an_empty_check_request_is_400(chan) -> None:
    resp = await ext_grpc.AuthorizationStub(chan).Check(ext.CheckRequest(), metadata=CALLER, timeout=10)
    assert refusal(resp)[1:] == (400, "bad request")


async def test_sidecar_error_fails_closed(gate: App, chan, monkeypatch) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("store is on fire")

    assert gate.decisions is not None
    monkeypatch.setattr(gate.decisions, "check", broken)
    resp = await ask(chan, "GET", DEPLOYMENT, "user:alice")
    assert refusal(resp) == (grpc.StatusCode.UNAVAILABLE.value[0], 503, "unavailable")


async def test_off_by_default_the_envoy_service_is_not_served(app: App, channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ext_grpc.AuthorizationStub(channel).Check(request("GET", DEPLOYMENT), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_broken_route_table_stops_the_server(store_url, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - method: GET\n    path: /a/{x}\n    workspace: '{y}'\n    scope: see_flows\n")
    app = App(settings_for(store_url, ext_authz=True, ext_authz_routes=routes))
    with pytest.raises(Exception, match=r"workspace uses \{y\}"):
        await app.start()
    await app.stop(0)


def test_the_server_starts_without_envoys_stubs_while_the_setting_is_off(tmp_path: Path) -> None:
    # xds-protos is the optional extra orgauthz[envoy]: hidden here, as if not installed.
    code = (
        "import asyncio, sys\n"
        "sys.modules['envoy'] = None\n"
        "from orgauthz.api.server import App\n"
        "from tests.conftest import settings_for\n"
        "async def main():\n"
        f"    url = 'sqlite:///{tmp_path}/s.db'\n"
        "    app = App(settings_for(url))\n"
        "    await app.start()\n"
        "    await app.stop(0)\n"
        "    app = App(settings_for(url, ext_authz=True))\n"
        "    try:\n"
        "        await app.start()\n"
        "    except RuntimeError as exc:\n"
        "        print(exc)\n"
        "    await app.stop(0)\n"
        "    assert not [m for m in sys.modules if m.startswith('envoy.')]\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "ext_authz is on but Envoy's stubs are not installed" in done.stdout
    assert "pip install 'orgauthz[envoy]'" in done.stdout


def test_serve_flag_turns_it_on() -> None:
    from orgauthz.cli import _settings, build_parser

    opts = build_parser().parse_args(["serve", "--ext-authz"])
    assert _settings(opts).ext_authz is True
    assert _settings(build_parser().parse_args(["serve"])).ext_authz is False


async def test_verdicts_are_counted_on_the_metrics_endpoint(gate: App, chan) -> None:
    """``orgauthz_ext_authz_verdicts_total{verdict}`` and the latency of ``ext_authz.Check``."""
    await ask(chan, "GET", DEPLOYMENT, "user:bob")
    await ask(chan, "PATCH", DEPLOYMENT, "user:carol")
    await ask(chan, "GET", "/api/health", "user:alice")
    text = generate_latest(gate.metrics.registry).decode()
    assert 'orgauthz_ext_authz_verdicts_total{verdict="allowed"} 1.0' in text
    assert 'orgauthz_ext_authz_verdicts_total{verdict="denied"} 1.0' in text
    assert 'orgauthz_ext_authz_verdicts_total{verdict="no route"} 1.0' in text
    assert 'orgauthz_rpc_latency_seconds_count{method="ext_authz.Check"} 3.0' in text
