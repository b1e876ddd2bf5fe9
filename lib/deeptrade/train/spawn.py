"""Run a function as N local ranks, the way torchrun or ``srun --ntasks=N`` would.

For workstations, tests and benchmarks: each rank is a fresh (spawned) process whose
environment carries its rank in torchrun style (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``) or Slurm style (``SLURM_PROCID``, ``SLURM_LOCALID``,
``SLURM_NTASKS``, ``SLURM_JOB_NODELIST``, ``SLURM_JOB_ID``), so the code under test reads it
exactly as on a cluster.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import socket
import traceback
from collections.abc import Callable
from typing import Any, Literal

from deeptrade.train.dist import PORT_BASE, PORT_SPAN

_LAUNCHER_VARS = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NTASKS",
    "SLURM_JOB_NODELIST",
    "SLURM_STEP_NODELIST",
    "SLURM_JOB_ID",
)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_in_slurm_range() -> int:
    for _ in range(200):
        port = random.randrange(PORT_BASE, PORT_BASE + PORT_SPAN)
        if _port_free(port):
            return port
    raise RuntimeError(f"no free port in [{PORT_BASE}, {PORT_BASE + PORT_SPAN})")


def rank_environ(rank: int, nprocs: int, port: int, style: str) -> dict[str, str]:
    if style == "torchrun":
        return {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nprocs),
            "LOCAL_WORLD_SIZE": str(nprocs),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    # A job id whose derived port (see DistEnv.master_port) is the free one we picked.
    job_id = 7 * PORT_SPAN + (port - PORT_BASE)
    return {
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_NTASKS": str(nprocs),
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_JOB_ID": str(job_id),
    }


def _child(
    rank: int,
    environ: dict[str, str],
    threads: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    results: Any,
) -> None:
    for k in _LAUNCHER_VARS:
        os.environ.pop(k, None)
    os.environ.update(environ)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
        results.put((rank, True, fn(*args, **kwargs)))
    except BaseException:
        results.put((rank, False, traceback.format_exc()))


def spawn(
    fn: Callable[..., Any],
    nprocs: int,
    *,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    style: Literal["torchrun", "slurm"] = "torchrun",
    threads: int = 1,
    timeout_s: float = 600.0,
) -> list[Any]:
    """``fn(*args, **kwargs)`` in ``nprocs`` spawned ranks; returns each rank's result.

    ``fn`` and its arguments must be picklable (a module-level function). If a rank fails,
    the others are stopped (they would wait forever in a collective) and the first failing
    rank's traceback is raised.
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port_in_slurm_range()
    procs = [
        ctx.Process(
            target=_child,
            args=(
                r,
                rank_environ(r, nprocs, port, style),
                threads,
                fn,
                args,
                kwargs or {},
                results,
            ),
            daemon=False,
        )
        for r in range(nprocs)
    ]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    try:
        while len(out) < nprocs:
            try:
                rank, ok, value = results.get(timeout=timeout_s)
            except queue.Empty:
                raise TimeoutError(
                    f"ranks {sorted(set(range(nprocs)) - set(out))} gave no result "
                    f"within {timeout_s} s"
                ) from None
            if not ok:
                raise RuntimeError(f"rank {rank} failed:\n{value}")
            out[rank] = value
    finally:
        for p in procs:
            p.join(timeout=30 if len(out) == nprocs else 1)
            if p.is_alive():
                p.terminate()
                p.join()
    return [out[r] for r in range(nprocs)]
