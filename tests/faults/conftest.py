"""The replica fixtures (tests/replicas/conftest.py) for the fault tests that run replicas as
processes: a seeded database on the shared cluster, a cluster of its own, replica processes."""

from tests.replicas.conftest import own_pg, replica_db, replicas  # noqa: F401  # fixtures, found by name
