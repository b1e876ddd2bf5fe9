"""Two ranks (gloo, CPU) match one process with the same global batch: DDP and DeepSpeed ZeRO-2.

Each rank is a spawned process that finds its rank in the environment, as under srun
(DDP test: SLURM_PROCID/SLURM_NTASKS/SLURM_JOB_NODELIST/SLURM_JOB_ID) or torchrun
(DeepSpeed test: RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT).

Tolerance: rtol 1e-5 on every step's loss, atol 1e-5 on the weights. The ranks compute the
same mean gradient as the single process, only summed in a different order (DDP averages
per-rank gradients; DeepSpeed reduces flattened, partitioned fp32 buffers), so the
differences stay at fp32 rounding level (measured: ~1e-7 relative for both engines).
Dropout is off: per-rank dropout streams cannot match a single process's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from _train_frames import oom_on_rank_1_above_4, train_in_two_phases

from deeptrade.train import TrainerConfig, TrainSpec, load_bundle, train_model
from deeptrade.train.spawn import spawn

RTOL = 1e-5
ATOL_WEIGHTS = 1e-5


def spec(engine: str) -> TrainSpec:
    return TrainSpec(
        model="lstm",
        params={"hidden": 8, "dropout": 0.0},
        window=8,
        trainer=TrainerConfig(
            engine=engine, zero_stage=2, epochs=2, global_batch_size=32, micro_batch_size=8
        ),
    )


@pytest.fixture(scope="module")
def single(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("single")
    return train_model(spec("ddp"), frame, None, out, checkpoint_dir=out / "ckpt")


def weights(bundle: str) -> dict[str, torch.Tensor]:
    return torch.load(Path(bundle) / "weights.pt", weights_only=True)


def assert_matches(single: dict[str, Any], multi: dict[str, Any]) -> None:
    assert multi["world_size"] == 2
    assert len(multi["step_losses"]) == len(single["step_losses"]) == 16
    np.testing.assert_allclose(multi["step_losses"], single["step_losses"], rtol=RTOL)
    for a, b in zip(multi["history"], single["history"], strict=True):
        np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=RTOL)
    wa, wb = weights(multi["bundle"]), weights(single["bundle"])
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=ATOL_WEIGHTS)


def test_ddp_two_slurm_tasks_match_one_process_through_an_oom_on_one_rank(
    frame: pd.DataFrame, tmp_path: Path, single: dict[str, Any]
) -> None:
    # Rank 1 alone "runs out of memory" at micro-batch 8: both ranks must agree to back off
    # to 4 (else rank 0 would wait in the all-reduce forever), and the global batch, hence
    # the losses, must not change.
    r0, r1 = spawn(
        train_model,
        2,
        args=(spec("ddp"), frame, None, str(tmp_path)),
        kwargs={"checkpoint_dir": str(tmp_path / "ckpt"), "fault_hook": oom_on_rank_1_above_4},
        style="slurm",
        timeout_s=300,
    )
    assert (r0["rank"], r1["rank"]) == (0, 1)
    assert r0["micro_batch_size"] == r1["micro_batch_size"] == 4
    assert r0["step_losses"] == r1["step_losses"]  # every rank reports the global mean
    assert r1["bundle"] == r0["bundle"]  # rank 1 returns once rank 0 has written it
    assert_matches(single, r0)
    b = load_bundle(r0["bundle"])
    assert b.meta["world_size"] == 2 and b.meta["trainer"]["engine"] == "ddp"


def test_deepspeed_zero2_two_ranks_match_one_process_across_a_resume(
    frame: pd.DataFrame, tmp_path: Path, single: dict[str, Any]
) -> None:
    # Each rank stops after 5 steps (ZeRO shards + trainer state checkpointed), then trains
    # again, resuming from it: this covers DeepSpeed's save and load as well.
    r0, _ = spawn(
        train_in_two_phases,
        2,
        args=(spec("deepspeed"), frame, str(tmp_path), str(tmp_path / "ckpt"), 5),
        style="torchrun",
        timeout_s=300,
    )
    assert r0["resumed_from"] == 5 and r0["status"] == "completed"
    assert_matches(single, r0)
    shards = sorted(p.name for p in (tmp_path / "ckpt").glob("step-*/deepspeed/*optim_states.pt"))
    assert len(shards) == 4  # 2 kept checkpoints x 2 ranks' ZeRO partitions
