"""Fixtures for tests against the real dev Slurm cluster (`make slurm-up` / slurm/dev/up).

Every test under tests/slurm is marked `slurm`. The session fixture `slurm_cluster` checks that
the controller answers and the node is usable; when it is not, the test is skipped, or fails
when DEEPTRADE_REQUIRE_SLURM=1 (CI sets it so a broken cluster can never pass silently).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from devslurm import SlurmCluster, cluster_problem  # tests/slurm/devslurm.py

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this directory `slurm`, so `-m "not slurm"` deselects them."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The running dev cluster; skip (or fail with DEEPTRADE_REQUIRE_SLURM=1) when absent."""
    problem = cluster_problem()
    if problem is not None:
        how = "start it with `sudo make slurm-up` (slurm/dev/up), then rerun"
        if os.environ.get("DEEPTRADE_REQUIRE_SLURM") == "1":
            pytest.fail(f"dev Slurm cluster required but unusable: {problem}; {how}")
        pytest.skip(f"dev Slurm cluster not running: {problem}; {how}")
    return SlurmCluster()
