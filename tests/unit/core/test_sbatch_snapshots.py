"""Recorded sbatch scripts per cluster profile, compared byte for byte.

To accept an intended change: DEEPTRADE_UPDATE_SNAPSHOTS=1 pytest tests/unit/core/test_sbatch_snapshots.py
and review the diff of tests/assets/sbatch/ before committing it.
"""

import os
from pathlib import Path

import pytest

from deeptrade.config.compose import load
from deeptrade.launch.apptainer import check_python_version, python_command
from deeptrade.launch.executor import sbatch_script
from tests.conftest import REPO

SNAPSHOTS = REPO / "tests" / "assets" / "sbatch"
FOLDER = Path("/shared/deeptrade/_launch/train-20260101-000000-abcd")


@pytest.mark.parametrize("profile", ["devslurm", "v100", "gh200"])
@pytest.mark.parametrize("array", [None, 20])
def test_sbatch_matches_recording(profile: str, array: int | None) -> None:
    cfg = load("ingest", [f"cluster={profile}"])
    text = sbatch_script(cfg.cluster, job_name="dt-train", folder=FOLDER, array=array)
    path = SNAPSHOTS / f"{profile}{'-array' if array else ''}.sbatch"
    if os.environ.get("DEEPTRADE_UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.is_file(), f"no recording {path}; create it with DEEPTRADE_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), (
        f"sbatch script for '{profile}' changed. If intended, rerun with "
        f"DEEPTRADE_UPDATE_SNAPSHOTS=1 and review the diff of {path}"
    )


@pytest.mark.parametrize("profile", ["v100", "gh200"])
def test_image_profiles_run_python_inside_apptainer(profile: str) -> None:
    cfg = load("ingest", [f"cluster={profile}"])
    line = python_command(cfg.cluster)
    assert line == (
        f"apptainer exec --nv --bind /shared --bind /scratch "
        f"/shared/images/deeptrade-{profile}.sif python3"
    )
    assert "--cleanenv" not in line


def test_python_minor_mismatch_is_refused_before_submitting() -> None:
    cfg = load("ingest", ["cluster=v100"])
    with pytest.raises(ValueError, match="same minor version"):
        check_python_version(cfg.cluster, host=(3, 11))
    check_python_version(cfg.cluster, host=(3, 12))
    check_python_version(load("ingest", ["cluster=devslurm"]).cluster, host=(3, 11))
