"""Rank discovery from launcher environments and precision by compute capability."""

from __future__ import annotations

import pytest
import torch

from deeptrade.train.dist import (
    PORT_BASE,
    PORT_SPAN,
    DistEnv,
    expand_nodelist,
    pick_precision,
    precision_for_capability,
)


@pytest.mark.parametrize(
    ("compact", "hosts"),
    [
        ("node1", ["node1"]),
        ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
        ("a[1-2],b3,c[08-10]", ["a1", "a2", "b3", "c08", "c09", "c10"]),
        ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
        ("x-[9-11].cluster", ["x-9.cluster", "x-10.cluster", "x-11.cluster"]),
    ],
)
def test_expand_nodelist_like_scontrol_show_hostnames(compact: str, hosts: list[str]) -> None:
    assert expand_nodelist(compact) == hosts


def test_expand_nodelist_rejects_unbalanced_brackets() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        expand_nodelist("gpu[01-02")


def test_slurm_tasks_give_rank_and_rendezvous() -> None:
    env = DistEnv(
        environ={
            "SLURM_PROCID": "5",
            "SLURM_LOCALID": "1",
            "SLURM_NTASKS": "8",
            "SLURM_JOB_NODELIST": "gpu[03-04],gpu10",
            "SLURM_STEP_NODELIST": "gpu[04,10]",
            "SLURM_JOB_ID": "123456",
        }
    )
    assert (env.source, env.rank, env.local_rank, env.world_size) == ("slurm", 5, 1, 8)
    assert env.is_distributed and not env.is_main
    assert env.master_addr == "gpu04"  # the step's first host, not the job's
    assert env.master_port == PORT_BASE + 123456 % PORT_SPAN
    assert PORT_BASE <= env.master_port < 32768  # below Linux's ephemeral ports


def test_torchrun_variables_win_over_slurm() -> None:
    env = DistEnv(
        environ={
            "RANK": "3",
            "LOCAL_RANK": "3",
            "WORLD_SIZE": "4",
            "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "29400",
            "SLURM_PROCID": "0",
            "SLURM_NTASKS": "1",
            "SLURM_JOB_ID": "9",
        }
    )
    assert (env.source, env.rank, env.local_rank, env.world_size) == ("torchrun", 3, 3, 4)
    assert (env.master_addr, env.master_port) == ("10.0.0.1", 29400)


def test_no_launcher_is_a_single_process() -> None:
    env = DistEnv(environ={})
    assert (env.source, env.rank, env.world_size, env.is_main, env.is_distributed) == (
        "single",
        0,
        1,
        True,
        False,
    )


def test_precision_follows_compute_capability_not_bf16_support() -> None:
    assert precision_for_capability((7, 0)) == "fp16"  # V100
    assert precision_for_capability((7, 5)) == "fp16"  # T4
    assert precision_for_capability((8, 0)) == "bf16"  # A100
    assert precision_for_capability((9, 0)) == "bf16"  # H100 / GH200
    assert precision_for_capability((9, 0), "fp32") == "fp32"
    assert pick_precision(torch.device("cpu")) == "fp32"
    assert pick_precision(torch.device("cpu"), "bf16") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        pick_precision(torch.device("cpu"), "half")
