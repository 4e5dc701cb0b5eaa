"""A client no one here wrote: Node.js (@grpc/grpc-js + @grpc/proto-loader reading proto/)
gets the same answers as the Python stubs, for allowed and denied decisions, workspace and
organization targets, and INVALID_ARGUMENT with its status code and message, over TCP and
over a Unix domain socket; and, with
Envoy's descriptors from the published xds-protos package, the same verdicts from Envoy's
``Authorization/Check`` (docs/envoy.md), beside a management call with its actor.

Needs ``node`` (>= 18) and ``npm``; the npm packages pinned in tests/interop/package.json
are installed into tests/interop/node_modules on first use.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import json_format

from orgauthz.api.server import App
from orgauthz.v1 import authorization_pb2 as pb
from orgauthz.v1 import authorization_pb2_grpc
from orgauthz.v1 import management_pb2 as mpb
from orgauthz.v1 import management_pb2_grpc as mpbg
from orgauthz.v1 import user_api_keys_pb2 as upb
from orgauthz.v1 import user_api_keys_pb2_grpc as upbg
from tests.conftest import settings_for
from tests.support.orgs import seed

INTEROP = Path(__file__).resolve().parents[1] / "interop"
DEMO = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "demo.yaml").read_text())
REQUESTS = {"Check": pb.CheckRequest, "BatchCheck": pb.BatchCheckRequest, "ListScopes": pb.ListScopesRequest}
INVALID = "INVALID_ARGUMENT"


def _installed() -> bool:
    """True when node_modules holds exactly the versions package.json pins."""
    wanted = json.loads((INTEROP / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = INTEROP / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
            return False
    return True


@pytest.fixture(scope="session")
def node_client() -> list[str]:
    """``[node, check.mjs]``, with the npm packages installed (``npm ci``) when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "the Node.js interop test needs `node` (>= 18) and `npm` on PATH: "
            "install Node.js, e.g. `apt-get install nodejs npm`"
        )
    # Serialize installs between concurrent test runs sharing this working tree.
    with (Path(tempfile.gettempdir()) / "orgauthz-interop-npm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=INTEROP,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0 or not _installed():
                pytest.fail(
                    f"`npm ci` in {INTEROP} failed (exit {done.returncode}); the npm registry "
                    f"must be reachable:\n{done.stdout}\n{done.stderr}"
                )
    return [node, str(INTEROP / "check.mjs")]


def _table(rev: int) -> list[tuple[str, str, dict[str, Any], Any]]:
    """(label, method, request as proto JSON, expected): True/False allowed, a list of them
    for a batch, a scope that must be listed, or INVALID."""
    ws = {"workspace": "acme-prod", "min_revision": rev, "explain": True}
    return [
        ("workspace role", "Check", {"subject": "user:bob", "scope": "manage_flows", **ws}, True),
        ("included scope", "Check", {"subject": "user:bob", "scope": "see_flows", **ws}, True),
        ("default role R17", "Check", {"subject": "user:carol", "scope": "see_flows", **ws}, True),
        ("default role only", "Check", {"subject": "user:carol", "scope": "manage_flows", **ws}, False),
        ("custom role R22", "Check", {"subject": "service_account:ci-bot", "scope": "manage_deployments", **ws}, True),
        (
            "service account beyond its role",
            "Check",
            {"subject": "service_account:ci-bot", "scope": "manage_work_pools", **ws},
            False,
        ),
        (
            "admin everywhere R2a",
            "Check",
            {"subject": "user:alice", "workspace": "acme-sandbox", "scope": "manage_workspace_users", "explain": True},
            True,
        ),
        ("unknown subject", "Check", {"subject": "user:nobody", "scope": "see_flows", **ws}, False),
        ("unknown workspace", "Check", {"subject": "user:bob", "workspace": "no-such-ws", "scope": "see_flows"}, False),
        (
            "organization admin",
            "Check",
            {"subject": "user:alice", "organization": "acme", "scope": "create:invitation", "explain": True},
            True,
        ),
        (
            "organization member",
            "Check",
            {"subject": "user:bob", "organization": "acme", "scope": "create:invitation", "explain": True},
            False,
        ),
        ("unknown scope", "Check", {"subject": "user:bob", "scope": "no_such_scope", **ws}, INVALID),
        ("malformed subject", "Check", {"subject": "bob", "scope": "see_flows", **ws}, INVALID),
        ("no target", "Check", {"subject": "user:bob", "scope": "see_flows"}, INVALID),
        (
            "batch",
            "BatchCheck",
            {
                "min_revision": rev,
                "items": [
                    {"subject": "user:bob", "workspace": "acme-prod", "scope": "manage_flows"},
                    {"subject": "user:carol", "workspace": "acme-prod", "scope": "manage_flows"},
                    {
                        "subject": "user:carol",
                        "workspace": "acme-sandbox",
                        "scope": "manage_workspace_users",
                        "explain": True,
                    },
                    {"subject": "user:bob", "organization": "acme", "scope": "read:audit_event"},
                ],
            },
            [True, False, True, False],
        ),
        (
            "batch with a bad item",
            "BatchCheck",
            {
                "items": [
                    {"subject": "user:bob", "workspace": "acme-prod", "scope": "see_flows"},
                    {"subject": "user:bob", "workspace": "acme-prod", "scope": "no_such_scope"},
                ]
            },
            INVALID,
        ),
        (
            "scopes from the default role",
            "ListScopes",
            {"subject": "user:carol", "workspace": "acme-prod", "min_revision": rev},
            "see_flows",
        ),
        (
            "scopes of a service account",
            "ListScopes",
            {"subject": "service_account:ci-bot", "workspace": "acme-prod"},
            "run_deployments",
        ),
        (
            "organization permissions",
            "ListScopes",
            {"subject": "user:alice", "organization": "acme"},
            "create:invitation",
        ),
        ("scopes of a stranger", "ListScopes", {"subject": "user:nobody", "workspace": "acme-prod"}, None),
        ("scopes, malformed subject", "ListScopes", {"subject": "", "workspace": "acme-prod"}, INVALID),
    ]


async def _python(stub: Any, method: str, request: dict[str, Any]) -> dict[str, Any]:
    """The Python stub's answer in the shape check.mjs prints (proto JSON, uint64 as strings)."""
    message = json_format.ParseDict(request, REQUESTS[method]())
    try:
        response = await getattr(stub, method)(message, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return {"ok": False, "code": exc.code().value[0], "details": exc.details()}
    return {
        "ok": True,
        "response": json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
    }


async def _node(node_client: list[str], address: str, calls: list[dict[str, Any]]) -> list[Any]:
    return await _node_env(node_client, address, calls, {})


async def _node_env(
    node_client: list[str], address: str, calls: list[dict[str, Any]], env: dict[str, str]
) -> list[Any]:
    proc = await asyncio.create_subprocess_exec(
        *node_client,
        address,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(calls).encode()), 120)
    assert proc.returncode == 0, f"check.mjs failed (exit {proc.returncode}):\n{err.decode()}"
    results: list[Any] = json.loads(out)
    return results


def _meets(expected: Any, got: dict[str, Any]) -> bool:
    if expected == INVALID:
        return not got["ok"] and got["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    if not got["ok"]:
        return False
    response = got["response"]
    if isinstance(expected, bool):
        return bool(response["allowed"]) is expected
    if isinstance(expected, list):
        return [r["allowed"] for r in response["results"]] == expected
    if isinstance(expected, str):
        return expected in response["scopes"]
    return response["scopes"] == []


async def test_node_client_gets_the_same_decisions_as_python(
    app: App, authz: Any, policy: Any, node_client: list[str]
) -> None:
    rev = seed(app.db, policy, DEMO)
    table = _table(rev)
    calls = [{"method": method, "request": request} for _, method, request, _ in table]

    node = await _node(node_client, f"127.0.0.1:{app.port}", calls)
    python = [await _python(authz, c["method"], c["request"]) for c in calls]

    assert len(node) == len(table)
    for (label, _, _, expected), from_node, from_python in zip(table, node, python, strict=True):
        assert _meets(expected, from_python), (label, from_python)
        assert from_node == from_python, label


async def test_node_client_over_a_unix_socket(
    db: Any, store_url: str, policy: Any, node_client: list[str], tmp_path: Path
) -> None:
    """The sidecar layout (README): the server on ``--listen unix:/path``; the Node client
    dials ``unix:/path`` and gets what the Python stubs get over the same socket."""
    rev = seed(db, policy, DEMO)
    path = tmp_path / "orgauthz.sock"
    server = App(settings_for(store_url, listen=f"unix:{path}"))
    await server.start()
    try:
        table = _table(rev)
        calls = [{"method": method, "request": request} for _, method, request, _ in table]
        node = await _node(node_client, f"unix:{path}", calls)
        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            python = [await _python(stub, c["method"], c["request"]) for c in calls]
    finally:
        await server.stop(0)
    for (label, _, _, expected), from_node, from_python in zip(table, node, python, strict=True):
        assert _meets(expected, from_python), (label, from_python)
        assert from_node == from_python, label


# -- Envoy's Authorization/Check and a management call ----------------------------------------

ENVOY = "envoy.service.auth.v3.Authorization"
ORGS = "orgauthz.v1.OrganizationService"


def _envoy_descriptor_set(path: Path) -> Path:
    """Envoy's ext_authz descriptors, with everything they import, as a FileDescriptorSet:
    what the published xds-protos package was generated from."""
    from envoy.service.auth.v3 import external_auth_pb2
    from google.protobuf import descriptor_pb2

    found = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd: Any) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        found.file.add().MergeFrom(descriptor_pb2.FileDescriptorProto.FromString(fd.serialized_pb))

    add(external_auth_pb2.DESCRIPTOR)
    path.write_bytes(found.SerializeToString())
    return path


def _http(method: str, path: str, **headers: str) -> dict[str, Any]:
    return {"attributes": {"request": {"http": {"method": method, "path": path, "headers": headers}}}}


def _entries(request: dict[str, Any]) -> dict[str, Any]:
    """The request with its header map as the repeated entries it is on the wire: protobuf.js
    reads a descriptor set's map fields as such lists (it does not keep the map_entry option)."""
    http = request["attributes"]["request"]["http"]
    entries = [{"key": k, "value": v} for k, v in http["headers"].items()]
    return {"attributes": {"request": {"http": {**http, "headers": entries}}}}


def _verdict(got: dict[str, Any]) -> tuple[Any, ...]:
    """What a CheckResponse says, whichever client decoded it: status code, HTTP status and headers."""
    assert got["ok"], got
    response = got["response"]
    chosen = response.get("denied_response") or response.get("ok_response") or {}
    http_status = (chosen.get("status") or {}).get("code")
    headers = sorted((h["header"]["key"], h["header"]["value"]) for h in chosen.get("headers") or [])
    return int(response["status"].get("code", 0)), http_status, tuple(headers)


async def test_node_client_asks_envoy_check_and_a_management_call(
    store_url: str, policy: Any, node_client: list[str], tmp_path: Path
) -> None:
    from envoy.service.auth.v3 import external_auth_pb2 as ext
    from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc

    app = App(settings_for(store_url, ext_authz=True))
    await app.start()
    try:
        assert app.db is not None
        assert app.feed is not None
        await app.feed.wait_for(seed(app.db, policy, DEMO), 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            bob = await upbg.UserApiKeyServiceStub(ch).CreateUserApiKey(
                upb.CreateUserApiKeyRequest(user_id="bob", name="node"), metadata=(("x-orgauthz-actor", "user:bob"),)
            )
            bearer = f"Bearer {bob.api_key}"
            ws = "/api/accounts/acme/workspaces/acme-prod"
            envoy_calls = {
                "allowed": _http("GET", f"{ws}/deployments/adhoc", authorization=bearer),
                "object ACL": _http("POST", f"{ws}/deployments/nightly-etl/create_flow_run", authorization=bearer),
                "no route": _http("GET", "/api/health", authorization=bearer),
                "no key": _http("GET", f"{ws}/deployments/adhoc"),
                "malformed": _http("GET", f"{ws}/deployments/../x", authorization=bearer),
            }
            expected = {
                "allowed": (0, None, (("x-orgauthz-subject", "user:bob"),)),
                "object ACL": (7, "Forbidden", (("x-orgauthz-reason", "denied"),)),
                "no route": (7, "Forbidden", (("x-orgauthz-reason", "no route"),)),
                "no key": (16, "Unauthorized", (("x-orgauthz-reason", "unauthenticated"),)),
                "malformed": (3, "BadRequest", (("x-orgauthz-reason", "bad request"),)),
            }
            calls = [{"service": ENVOY, "method": "Check", "request": _entries(r)} for r in envoy_calls.values()]
            calls += [
                {
                    "service": ORGS,
                    "method": "GetOrganization",
                    "request": {"organization": "acme"},
                    "metadata": {"x-orgauthz-actor": actor},
                }
                for actor in ("user:bob", "user:mallory")
            ]
            env_file = _envoy_descriptor_set(tmp_path / "envoy.fds")
            node = await _node_env(node_client, f"127.0.0.1:{app.port}", calls, {"ENVOY_DESCRIPTOR_SET": str(env_file)})

            stub = ext_grpc.AuthorizationStub(ch)
            for (label, request), from_node in zip(envoy_calls.items(), node, strict=False):
                answer = await stub.Check(json_format.ParseDict(request, ext.CheckRequest()), timeout=10)
                from_python = {
                    "ok": True,
                    "response": json_format.MessageToDict(answer, preserving_proto_field_name=True),
                }
                assert _verdict(from_python) == expected[label], label
                assert _verdict(from_node) == expected[label], (label, from_node)

            orgs = mpbg.OrganizationServiceStub(ch)
            member, outsider = node[len(envoy_calls) :]
            mine = await orgs.GetOrganization(
                mpb.GetOrganizationRequest(organization="acme"), metadata=(("x-orgauthz-actor", "user:bob"),)
            )
            assert member["ok"], member
            assert member["response"]["organization"]["id"] == mine.organization.id == "acme"
            assert member["response"]["organization"]["name"] == mine.organization.name
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await orgs.GetOrganization(
                    mpb.GetOrganizationRequest(organization="acme"), metadata=(("x-orgauthz-actor", "user:mallory"),)
                )
            assert not outsider["ok"]
            assert (outsider["code"], outsider["details"]) == (refused.value.code().value[0], refused.value.details())
    finally:
        await app.stop(0)
