import subprocess
import sys
import time

import pytest

from deeptrade.config.compose import load
from deeptrade.config.jobs import DeeptradeConfig
from tests.conftest import REPO

JOBS_WITH_CONFIG = ["ingest", "features"]


@pytest.mark.parametrize("job", JOBS_WITH_CONFIG)
@pytest.mark.parametrize("experiment", [None, "smoke"])
@pytest.mark.parametrize("cluster", ["local", "devslurm", "v100", "gh200"])
def test_every_job_composes(job: str, experiment: str | None, cluster: str) -> None:
    overrides = [f"cluster={cluster}"] + ([f"experiment={experiment}"] if experiment else [])
    cfg = load(job, overrides)
    assert isinstance(cfg, DeeptradeConfig)
    assert cfg.cluster.name == cluster


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ValueError) as e:
        load("ingest", ["data.nmae=x"])
    msg = str(e.value)
    assert (
        "Did you mean 'data.name'" in msg
        and "Valid keys under data:" in msg
        and "timeframes" in msg
    )


def test_plus_key_outside_schema_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Unknown config key 'cluster.foo'"):
        load("ingest", ["+cluster.foo=1"])


def test_wrong_type_fails() -> None:
    with pytest.raises(ValueError, match="cpus_per_task"):
        load("ingest", ["cluster.cpus_per_task=abc"])


def test_typo_on_command_line_fails_fast_with_valid_keys() -> None:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "jobs.ingest", "cluster.partitoin=x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 2
    assert "Did you mean 'cluster.partition'" in out.stderr
    assert "Valid keys under cluster:" in out.stderr
    assert elapsed < 2.0, f"took {elapsed:.2f}s"
