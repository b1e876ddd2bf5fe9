"""Rank handling in one place: who am I, who is rank 0, how do ranks meet, which precision.

Ranks come from the launcher's environment, in this order:

1. torchrun (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``);
2. Slurm tasks (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``), one task per GPU, any
   number of nodes; rank 0's host is the first host of the step's node list and the port is
   derived from the job id, so every task computes the same rendezvous without talking;
3. nothing: a single process.

Only rank 0 writes files; every rank calls the same code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import torch
import torch.distributed as tdist

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]

# Rendezvous ports derived from the Slurm job id land in [PORT_BASE, PORT_BASE + PORT_SPAN):
# below Linux's ephemeral range (32768+), so an outgoing connection never holds it by chance.
PORT_BASE = 15000
PORT_SPAN = 15000


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand Slurm's compact host list, e.g. ``gpu[01-03,07],cpu1`` -> 5 host names.

    Same result as ``scontrol show hostnames`` for the forms Slurm emits (ranges keep their
    zero padding; several bracket groups in one name multiply out), without a subprocess.
    """
    hosts: list[str] = []
    for item in _split_top_level(nodelist.strip()):
        hosts.extend(_expand_one(item))
    return hosts


def _split_top_level(s: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise ValueError(f"unbalanced brackets in Slurm node list {s!r}")
    if cur:
        parts.append("".join(cur))
    return [p for p in parts if p]


def _expand_one(item: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", item)
    if m is None:
        return [item]
    head, tail = item[: m.start()], item[m.end() :]
    out = []
    for rng in m.group(1).split(","):
        lo, _, hi = rng.partition("-")
        if not hi:
            values = [lo]
        else:
            width = len(lo)
            values = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
        for v in values:
            out.extend(_expand_one(f"{head}{v}{tail}"))
    return out


@dataclass(kw_only=True)
class DistEnv:
    """This process's place in the job, read from the launcher's environment variables."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    """Environment to read (defaults to a snapshot of ``os.environ``; tests pass a dict)."""

    @property
    def source(self) -> Literal["torchrun", "slurm", "single"]:
        e = self.environ
        if "RANK" in e and "WORLD_SIZE" in e:
            return "torchrun"
        if "SLURM_PROCID" in e and "SLURM_NTASKS" in e:
            return "slurm"
        return "single"

    @property
    def rank(self) -> int:
        return int(self._pick("RANK", "SLURM_PROCID", "0"))

    @property
    def local_rank(self) -> int:
        return int(self._pick("LOCAL_RANK", "SLURM_LOCALID", "0"))

    @property
    def world_size(self) -> int:
        return int(self._pick("WORLD_SIZE", "SLURM_NTASKS", "1"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def master_addr(self) -> str:
        e = self.environ
        if "MASTER_ADDR" in e:
            return e["MASTER_ADDR"]
        nodelist = e.get("SLURM_STEP_NODELIST") or e.get("SLURM_JOB_NODELIST")
        if self.source == "slurm" and nodelist:
            return expand_nodelist(nodelist)[0]
        return "127.0.0.1"

    @property
    def master_port(self) -> int:
        e = self.environ
        if "MASTER_PORT" in e:
            return int(e["MASTER_PORT"])
        if "SLURM_JOB_ID" in e:
            return PORT_BASE + int(e["SLURM_JOB_ID"]) % PORT_SPAN
        return 29500

    def _pick(self, torchrun_key: str, slurm_key: str, default: str) -> str:
        src = self.source
        if src == "torchrun":
            return self.environ.get(torchrun_key, default)
        if src == "slurm":
            return self.environ.get(slurm_key, default)
        return default

    def export(self) -> None:
        """Write the torchrun-style variables into ``os.environ`` (DeepSpeed reads them there)."""
        os.environ.update(
            RANK=str(self.rank),
            LOCAL_RANK=str(self.local_rank),
            WORLD_SIZE=str(self.world_size),
            MASTER_ADDR=self.master_addr,
            MASTER_PORT=str(self.master_port),
        )


def pick_device(env: DistEnv, requested: str = "auto") -> torch.device:
    """``cuda:<local rank>`` when a GPU is visible (``cuda:0`` when Slurm bound one per task)."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device={requested!r} but no CUDA device is visible; use device=cpu")
    n = torch.cuda.device_count()
    return torch.device("cuda", env.local_rank if n > 1 else 0)


def pick_precision(device: torch.device, requested: str = "auto") -> Precision:
    """fp32 on CPU; on GPUs bf16 from compute capability 8.0 (A100/H100/GH200), else fp16.

    Decided from the compute capability, not ``torch.cuda.is_bf16_supported()``: that returns
    True on V100 (sm_70), where bf16 is emulated and slow.
    """
    if requested not in ("auto", "fp32", "fp16", "bf16"):
        raise ValueError(f"precision={requested!r}; use one of auto, fp32, fp16, bf16")
    if device.type != "cuda":
        if requested in ("fp16", "bf16"):
            log.warning("precision=%s ignored on CPU: training runs in fp32", requested)
        return "fp32"
    return precision_for_capability(torch.cuda.get_device_capability(device), requested)


def precision_for_capability(capability: tuple[int, int], requested: str = "auto") -> Precision:
    """GPU precision for a compute capability: bf16 from 8.0, fp16 (+ loss scaling) below."""
    if requested in ("fp32", "fp16", "bf16"):
        return requested  # type: ignore[return-value]
    return "bf16" if capability >= (8, 0) else "fp16"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process_group(
    env: DistEnv,
    device: torch.device,
    *,
    always: bool = False,
    keep: bool = False,
    timeout_s: float = 600.0,
) -> Iterator[bool]:
    """Join the job's process group for the block; yields whether one is active.

    A single process gets no group unless ``always`` (DeepSpeed needs one even alone; it then
    rendezvouses on a free local port). A group that already exists is used as is and left
    alone; one created here is destroyed on exit unless ``keep`` (DeepSpeed caches its
    groups for the life of the process, so once it has used one it must stay up).
    """
    if tdist.is_initialized():
        yield True
        return
    if env.world_size == 1 and not always:
        yield False
        return
    port = env.master_port
    if env.world_size == 1 and "MASTER_PORT" not in env.environ:
        port = _free_port()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    tdist.init_process_group(
        backend,
        init_method=f"tcp://{env.master_addr}:{port}",
        rank=env.rank,
        world_size=env.world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    log.info(
        "rank %d/%d (local %d, %s) joined %s group at %s:%d",
        env.rank,
        env.world_size,
        env.local_rank,
        env.source,
        backend,
        env.master_addr,
        port,
    )
    try:
        yield True
    finally:
        if not keep:
            tdist.destroy_process_group()
