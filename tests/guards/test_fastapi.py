"""orgauthz.guards.fastapi: a real FastAPI app, through its TestClient, guarded by a real
orgauthz server holding the demo organization. Allowed runs the route with the subject;
denied is 403 with the same short reason whether or not the workspace exists; no subject is
401; the sidecar down, erring or slow is 503, counted, and the route never runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from orgauthz.api.server import App
from orgauthz.guards import FromApiKey, FromHeader
from orgauthz.guards.fastapi import Guard
from tests.conftest import settings_for
from tests.guards.conftest import DEMO, Keys
from tests.support.orgs import seed

Headers = Sequence[tuple[str, str]]


@dataclass
class Api:
    """A FastAPI app whose routes each need a decision; ``ran`` lists the routes that ran."""

    guard: Guard
    app: FastAPI
    ran: list[str] = field(default_factory=list)


def make_api(guard: Guard) -> Api:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await guard.aclose()

    api = Api(guard, FastAPI(lifespan=lifespan))
    app = api.app

    @app.get("/workspaces/{ws}/flows")
    async def flows(
        ws: str, request: Request, subject: str = Depends(guard.require_scope("see_flows", workspace="{ws}"))
    ) -> Any:
        api.ran.append(f"flows {ws}")
        return {"subject": subject, "state": request.state.orgauthz_subject}

    @app.post("/workspaces/{ws}/deployments/{id}/run")
    async def run(
        ws: str,
        id: str,
        subject: str = Depends(guard.require_scope("run_deployments", workspace="{ws}", object="deployment:{id}")),
    ) -> Any:
        api.ran.append(f"run {id}")
        return {"subject": subject}

    @app.post("/orgs/{org}/invitations")
    async def invite(
        org: str, subject: str = Depends(guard.require_scope("create:invitation", organization="{org}"))
    ) -> Any:
        api.ran.append(f"invite {org}")
        return {"subject": subject}

    @app.get("/production/blocks")
    async def blocks(
        subject: str = Depends(guard.require_scope("see_secret_blocks", workspace=lambda r: "acme-prod")),
    ) -> Any:
        api.ran.append("blocks")
        return {"subject": subject}

    return api


async def send(api: Api, *calls: tuple[str, str, Headers]) -> list[httpx.Response]:
    """Each (method, path, headers) through one TestClient, in a thread: the TestClient runs
    the app in a loop of its own while this test's loop serves the orgauthz server."""

    def run() -> list[httpx.Response]:
        with TestClient(api.app) as http:
            return [http.request(method, path, headers=list(headers)) for method, path, headers in calls]

    return await asyncio.to_thread(run)


def as_(subject: str) -> Headers:
    return [("x-orgauthz-subject", subject)]


def bearer(key: str) -> Headers:
    return [("authorization", f"Bearer {key}")]


async def test_allowed_runs_the_route_with_the_subject_from_the_proxy_header(sidecar: str) -> None:
    api = make_api(Guard(sidecar))
    (ok,) = await send(api, ("GET", "/workspaces/acme-prod/flows", as_("user:carol")))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"subject": "user:carol", "state": "user:carol"}  # the default role Viewer
    assert api.ran == ["flows acme-prod"]
    assert api.guard.counts.allowed == 1


async def test_denied_is_403_with_a_short_reason_that_does_not_tell_whether_the_workspace_exists(
    sidecar: str,
) -> None:
    api = make_api(Guard(sidecar))
    exists, missing, constant = await send(
        api,
        ("GET", "/workspaces/acme-sandbox/flows", as_("user:bob")),  # bob holds nothing in Sandbox
        ("GET", "/workspaces/no-such-workspace/flows", as_("user:bob")),
        ("GET", "/production/blocks", as_("user:carol")),  # a Viewer does not see secret blocks
    )
    assert (exists.status_code, exists.json()) == (403, {"detail": "not allowed: see_flows"})
    assert (missing.status_code, missing.content) == (exists.status_code, exists.content)
    assert (constant.status_code, constant.json()) == (403, {"detail": "not allowed: see_secret_blocks"})
    assert api.ran == []
    assert api.guard.counts.denied == 3
    assert api.guard.counts.allowed == 0


async def test_r26_r27_the_object_acl_decides_too(sidecar: str) -> None:
    """nightly-etl runs on prod-pool, whose ACL lists only the Platform team: Bob, a Developer,
    may run deployments in Production but not this one; the CI account, in the team, may."""
    api = make_api(Guard(sidecar))
    bob_etl, ci_etl, bob_adhoc = await send(
        api,
        ("POST", "/workspaces/acme-prod/deployments/nightly-etl/run", as_("user:bob")),
        ("POST", "/workspaces/acme-prod/deployments/nightly-etl/run", as_("service_account:ci-bot")),
        ("POST", "/workspaces/acme-prod/deployments/adhoc/run", as_("user:bob")),  # no ACL: the workspace decides
    )
    assert (bob_etl.status_code, bob_etl.json()) == (403, {"detail": "not allowed: run_deployments"})
    assert ci_etl.status_code == 200, ci_etl.text
    assert ci_etl.json() == {"subject": "service_account:ci-bot"}
    assert bob_adhoc.status_code == 200, bob_adhoc.text
    assert api.ran == ["run nightly-etl", "run adhoc"]


async def test_an_organization_permission(sidecar: str) -> None:
    api = make_api(Guard(sidecar))
    owner, member = await send(
        api, ("POST", "/orgs/acme/invitations", as_("user:alice")), ("POST", "/orgs/acme/invitations", as_("user:bob"))
    )
    assert owner.status_code == 200, owner.text
    assert member.status_code == 403
    assert api.ran == ["invite acme"]


async def test_no_subject_in_the_header_is_401(sidecar: str) -> None:
    """Missing, malformed, or given twice (a proxy that appended its own behind the client's)."""
    api = make_api(Guard(sidecar, subject=FromHeader("x-orgauthz-subject")))
    path = "/workspaces/acme-prod/flows"
    answers = await send(
        api,
        ("GET", path, []),
        ("GET", path, as_("bob")),
        ("GET", path, [*as_("user:bob"), *as_("user:alice")]),
        ("GET", path, [("x-other-subject", "user:bob")]),
    )
    assert [a.status_code for a in answers] == [401] * 4
    assert answers[0].json() == {"detail": "missing x-orgauthz-subject"}
    assert api.ran == []
    assert api.guard.counts.unauthenticated == 4


async def test_subject_from_an_api_key_resolved_by_the_sidecar(sidecar: str, keys: Keys) -> None:
    api = make_api(Guard(sidecar, subject=FromApiKey()))
    bob, ci, ci_etl, bob_etl = await send(
        api,
        ("GET", "/workspaces/acme-prod/flows", bearer(keys.bob)),
        ("GET", "/workspaces/acme-prod/flows", bearer(keys.ci_bot)),
        ("POST", "/workspaces/acme-prod/deployments/nightly-etl/run", bearer(keys.ci_bot)),
        ("POST", "/workspaces/acme-prod/deployments/nightly-etl/run", bearer(keys.bob)),
    )
    assert bob.json()["subject"] == "user:bob"
    assert ci.json()["subject"] == "service_account:ci-bot"
    assert ci_etl.status_code == 200, ci_etl.text
    assert bob_etl.status_code == 403
    assert api.guard.counts.allowed == 3


async def test_a_bad_or_missing_api_key_is_401_and_a_subject_header_is_not_read(sidecar: str, keys: Keys) -> None:
    api = make_api(Guard(sidecar, subject=FromApiKey()))
    path = "/workspaces/acme-prod/flows"
    answers = await send(
        api,
        ("GET", path, bearer("pnb_" + "x" * 40)),  # well-formed, unknown
        ("GET", path, bearer("s3cret")),  # not an orgauthz key: never sent
        ("GET", path, [("authorization", f"Basic {keys.bob}")]),
        ("GET", path, as_("user:alice")),
    )
    assert [a.status_code for a in answers] == [401] * 4
    assert answers[0].json() == {"detail": "invalid API key"}
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers)
    assert api.ran == []
    assert api.guard.counts.unauthenticated == 4
    assert api.guard.counts.failed_closed == 0


async def test_sidecar_down_fails_closed_with_503_and_is_counted(closed_port: str) -> None:
    api = make_api(Guard(closed_port))
    answers = await send(
        api,
        ("GET", "/workspaces/acme-prod/flows", as_("user:alice")),
        ("POST", "/workspaces/acme-prod/deployments/nightly-etl/run", as_("user:alice")),
    )
    assert [(a.status_code, a.json()) for a in answers] == [(503, {"detail": "authorization is unavailable"})] * 2
    assert answers[0].headers["retry-after"] == "1"
    assert api.ran == []
    assert api.guard.counts.unavailable == 2
    assert api.guard.counts.allowed == 0


async def test_a_sidecar_stopped_after_answering_fails_closed(store_url: str, policy: Any) -> None:
    server = App(settings_for(store_url))
    await server.start()
    try:
        await server.feed.wait_for(seed(server.db, policy, DEMO), 10)
        api = make_api(Guard(f"127.0.0.1:{server.port}"))
        (before,) = await send(api, ("GET", "/workspaces/acme-prod/flows", as_("user:bob")))
    finally:
        await server.stop(0)
    (after,) = await send(api, ("GET", "/workspaces/acme-prod/flows", as_("user:bob")))
    assert (before.status_code, after.status_code) == (200, 503)
    assert api.ran == ["flows acme-prod"]
    assert api.guard.counts.unavailable == 1


async def test_the_guard_s_own_credentials_refused_is_503_not_the_caller_s_401(store_url: str, policy: Any) -> None:
    """A sidecar that requires a shared secret: the guard with it decides; the guard without
    it is an outage of the guard (503, counted), never blamed on the request."""
    server = App(settings_for(store_url, insecure_dev=False, auth_token="s3cret"))
    await server.start()
    try:
        await server.feed.wait_for(seed(server.db, policy, DEMO), 10)
        target = f"127.0.0.1:{server.port}"
        with_token, without = make_api(Guard(target, token="s3cret")), make_api(Guard(target))
        (ok,) = await send(with_token, ("GET", "/workspaces/acme-prod/flows", as_("user:bob")))
        (refused,) = await send(without, ("GET", "/workspaces/acme-prod/flows", as_("user:bob")))
    finally:
        await server.stop(0)
    assert (ok.status_code, refused.status_code) == (200, 503)
    assert without.guard.counts.unavailable == 1


@pytest.mark.parametrize("subject", ["header", "api_key"])
async def test_a_slow_sidecar_times_out_fails_closed_and_is_counted(slow_sidecar: str, subject: str) -> None:
    if subject == "header":
        api, headers = make_api(Guard(slow_sidecar, timeout=0.2)), as_("user:bob")
    else:
        api, headers = make_api(Guard(slow_sidecar, timeout=0.2, subject=FromApiKey())), bearer("pnu_" + "k" * 40)
    started = time.monotonic()
    (answer,) = await send(api, ("GET", "/workspaces/acme-prod/flows", headers))
    assert time.monotonic() - started < 2.0
    assert answer.status_code == 503
    assert api.ran == []
    assert api.guard.counts.timeouts == 1
    assert api.guard.counts.failed_closed == 1


def test_a_rule_names_one_target() -> None:
    guard = Guard("127.0.0.1:1")
    with pytest.raises(ValueError, match="exactly one of workspace and organization"):
        guard.require_scope("see_flows")
    with pytest.raises(ValueError, match="exactly one of workspace and organization"):
        guard.require_scope("see_flows", workspace="w", organization="o")
    with pytest.raises(ValueError, match="object"):
        guard.require_scope("run_deployments", organization="o", object="deployment:{id}")
    with pytest.raises(ValueError, match="plain names"):
        guard.require_scope("see_flows", workspace="{ws.__class__}")
