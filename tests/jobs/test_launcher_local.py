"""Our Hydra launcher with cluster=local: a -m sweep runs every point here and is recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deeptrade.io import ArtifactStore
from deeptrade.launch.sweeps import SweepRecord, sweep_status
from tests.conftest import REPO


def test_local_multirun_records_a_sweep(store_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobs.ingest", "-m", "experiment=smoke", "data.name=a,b"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweep_id = (
        next(ln for ln in out.stdout.splitlines() if ln.startswith("sweep ")).split()[1].rstrip(":")
    )
    record = SweepRecord.load(store_root, sweep_id)
    status = sweep_status(record)
    assert [s.state for s in status] == ["COMPLETED", "COMPLETED"]
    assert [s.result["artifact"] for s in status] == ["bars/a", "bars/b"]
    store = ArtifactStore(store_root)
    assert store.get("bars", "a") is not None and store.get("bars", "b") is not None
    # Hydra's own output dirs live under the store, never in the source tree.
    assert not (REPO / "outputs").exists() or not any((REPO / "outputs").iterdir())


def test_cli_typo_in_override_is_a_clean_error(store_root: Path) -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "deeptrade"), "run", "ingest", "data.nmae=x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "Did you mean 'data.name'" in out.stderr
    assert "Traceback" not in out.stderr
