import os
import resource
import subprocess
import sys
import time

import pytest

from deeptrade.config.compose import load
from deeptrade.config.jobs import DeeptradeConfig
from tests.conftest import REPO

JOBS_WITH_CONFIG = ["ingest", "features", "train", "backtest", "sentiment", "publish", "live"]


@pytest.mark.parametrize("job", JOBS_WITH_CONFIG)
@pytest.mark.parametrize("experiment", [None, "smoke", "demo"])
def test_every_job_composes(job: str, experiment: str | None) -> None:
    cfg = load(job, [f"experiment={experiment}"] if experiment else [])
    assert isinstance(cfg, DeeptradeConfig)


@pytest.mark.parametrize("cluster", ["local", "devslurm", "v100", "gh200"])
def test_every_cluster_profile_composes(cluster: str) -> None:
    assert load("train", [f"cluster={cluster}"]).cluster.name == cluster


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
    """``trainer.lrr=1`` fails in under 2 s. Timed as CPU seconds of the child process, so a
    machine busy with other work cannot make the test flaky; wall time is reported too."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "jobs.train", "trainer.lrr=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert out.returncode == 2
    assert "Did you mean 'trainer.lr'" in out.stderr
    assert "Valid keys under trainer:" in out.stderr and "global_batch_size" in out.stderr
    assert cpu < 2.0, f"took {cpu:.2f} CPU s ({wall:.2f} s wall)"
    if os.getloadavg()[0] < 1.5:  # a quiet machine: the wall clock must hold too
        assert wall < 2.0, f"took {wall:.2f} s wall"
