"""Health (grpc.health.v1) and server reflection (SPEC §2), and a server whose policies
cannot load never starts: it exits non-zero naming the file and the problem."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from orgauthz.api.server import App
from orgauthz.domain.policy import DEFAULT_POLICY_DIR
from tests.conftest import settings_for

AUTHZ = "orgauthz.v1.AuthorizationService"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
STORE = "orgauthz.v1.Store"


@pytest.mark.parametrize("service", ["", AUTHZ])
async def test_health_is_serving_once_started(channel: grpc.aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    got = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert got.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_answers_probes_without_credentials_when_callers_must_authenticate(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copy(sqlite_template, tmp_path / "orgauthz.db")
    app = App(settings_for(f"sqlite:///{tmp_path / 'orgauthz.db'}", insecure_dev=False, auth_token="s3cret"))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            got = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert got.status == health_pb2.HealthCheckResponse.SERVING
            listed = await health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=10)
            assert listed.statuses[""].status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await app.stop(0)


async def test_health_list_reports_every_service_name_with_its_status(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    got = await stub.List(health_pb2.HealthListRequest(), timeout=10)
    statuses = {name: health_pb2.HealthCheckResponse.ServingStatus.Name(r.status) for name, r in got.statuses.items()}
    # No Redis configured: no orgauthz.v1.Cache to report on.
    assert statuses == {"": "SERVING", AUTHZ: "SERVING", STORE: "SERVING"}
    for name, listed in got.statuses.items():  # what Check answers, name by name
        checked = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert checked.status == listed.status, name


async def test_health_of_an_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def _reflect(
    channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(timeout=10)
    await call.write(request)
    await call.done_writing()
    responses = [r async for r in call]
    assert len(responses) == 1
    return responses[0]


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    got = await _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in got.list_services_response.service}
    assert {AUTHZ, HEALTH, REFLECTION} <= names


async def test_reflection_describes_the_authorization_service(channel: grpc.aio.Channel) -> None:
    from google.protobuf import descriptor_pb2

    got = await _reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=AUTHZ))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in got.file_descriptor_response.file_descriptor_proto
    ]
    methods = {
        m.name
        for f in files
        if f.package == "orgauthz.v1"
        for s in f.service
        if s.name == "AuthorizationService"
        for m in s.method
    }
    assert {"Check", "BatchCheck", "ListScopes", "ListAccessibleWorkspaces", "Authenticate"} <= methods


def _serve_with_policies(policy_dir: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    orgauthz = Path(sys.executable).parent / "orgauthz"
    if not orgauthz.exists():
        pytest.fail(f"{orgauthz} is missing: install the package (`pip install -e '.[dev]'`)")
    return subprocess.run(
        [
            str(orgauthz),
            "serve",
            "--policy-dir",
            str(policy_dir),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            "--database-url",
            f"sqlite:///{workdir / 'store.db'}",
            "--insecure-dev",
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
        check=False,
    )


def test_a_server_with_a_broken_policy_fails_to_start_naming_file_and_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR, policies)
    roles = policies / "roles.yaml"
    text = roles.read_text()
    assert "      - see_flows\n" in text
    roles.write_text(text.replace("      - see_flows\n", "      - see_flowz\n", 1))

    done = _serve_with_policies(policies, tmp_path)

    assert done.returncode == 2
    assert "listening" not in done.stdout
    assert f"{roles}:" in done.stderr
    assert "unknown scope 'see_flowz'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_with_a_missing_policy_file_fails_to_start(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR, policies)
    (policies / "scopes.yaml").unlink()

    done = _serve_with_policies(policies, tmp_path)

    assert done.returncode == 2
    assert "listening" not in done.stdout
    assert "scopes.yaml" in done.stderr
    assert "missing" in done.stderr
