"""docker-compose.yml: two replicas, PostgreSQL and Redis, each with a health check.

Validated with Debian's ``docker-compose config`` (no Docker engine needed). It never
skips: without the binary the test fails saying what to install.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_with_two_replicas_and_health_checks() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose not found: apt-get install -y docker-compose (.ci/run installs it)"
    out = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"postgres", "redis", "orgauthz-1", "orgauthz-2"} <= set(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("orgauthz-1", "orgauthz-2"):
        env = services[name]["environment"]
        assert env["ORGAUTHZ_DATABASE_URL"].startswith("postgresql")
        assert env["ORGAUTHZ_REDIS_URL"].startswith("redis://")
        assert services[name]["build"]
    assert "orgauthz-1" in services["orgauthz-2"]["depends_on"]  # one replica migrates, then the other starts
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ENTRYPOINT" in dockerfile
    assert "COPY policies ./policies" in dockerfile  # built into the package (orgauthz.policies)
    assert "ORGAUTHZ_POLICY_DIR" not in dockerfile  # the installed package finds them
