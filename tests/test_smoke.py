"""The README tour, through gRPC: the demo organization answers as documented."""

from __future__ import annotations

from pathlib import Path

import yaml

from orgauthz.api.server import App
from orgauthz.v1 import authorization_pb2 as pb
from tests.support.orgs import seed

DEMO = yaml.safe_load((Path(__file__).parents[1] / "examples" / "demo.yaml").read_text())


async def test_demo_organization_answers_as_the_readme_says(app: App, authz, policy) -> None:
    rev = seed(app.db, policy, DEMO)
    r = await authz.Check(
        pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="manage_flows", min_revision=rev, explain=True)
    )
    assert r.allowed
    assert r.revision >= rev
    assert r.reasons == ["workspace role Developer"]
    r = await authz.Check(pb.CheckRequest(subject="user:carol", workspace="acme-prod", scope="see_flows", explain=True))
    assert r.allowed
    assert r.reasons == ["default workspace role Viewer"]
    r = await authz.Check(pb.CheckRequest(subject="user:carol", workspace="acme-prod", scope="manage_flows"))
    assert not r.allowed

    # The ACL step (R26, R27): prod-pool's ACL lists team platform at run and governs nightly-etl.
    etl = "deployment:nightly-etl"
    r = await authz.Check(
        pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="run_deployments", object=etl, explain=True)
    )
    assert not r.allowed
    assert r.reasons[-1] == (
        "work_pool:prod-pool's ACL, which governs deployment:nightly-etl (R27): user:bob is not listed at run "
        "or above, itself or through a team (R26)"
    )
    r = await authz.Check(
        pb.CheckRequest(
            subject="service_account:ci-bot", workspace="acme-prod", scope="run_deployments", object=etl, explain=True
        )
    )
    assert r.allowed
    assert r.reasons == [
        "workspace role acme-deployer",
        "work_pool:prod-pool's ACL, which governs deployment:nightly-etl (R27): listed at run through team:platform",
    ]
    r = await authz.Check(pb.CheckRequest(subject="user:bob", workspace="acme-prod", scope="run_deployments"))
    assert r.allowed  # without the object, the workspace alone decides
