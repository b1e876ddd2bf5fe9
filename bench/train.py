"""Training throughput: one process vs 2 DDP ranks vs 2 DeepSpeed ZeRO-2 ranks (CPU, gloo).

Prints one JSON object per measurement. The anchor is the same trainer in one process, plus a
bare torch loop (no trainer) for the trainer's own overhead. Scaling efficiency is
``2-rank samples/s / (2 x single-process samples/s)`` with the per-rank batch held fixed
(weak scaling). Every rank runs one thread; on a machine with 2 cores shared with other work,
2 ranks compete for those cores, so the wall-clock ratio measures contention as much as
overhead. ``cpu_efficiency`` (a rank's samples per CPU-second over the single process's) is
the overhead distribution adds, which other load on the machine cannot distort.

    python bench/train.py            # default sizes
    python bench/train.py --quick    # a few steps, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from deeptrade.models import build_model, model_config
from deeptrade.train.data import Scaler, WindowDataset
from deeptrade.train.dist import DistEnv
from deeptrade.train.spawn import spawn
from deeptrade.train.trainer import Trainer, TrainerConfig

MODEL = "lstm"
PARAMS = {"hidden": 32, "dropout": 0.0}
WINDOW, FEATURES, ROWS = 30, 8, 60_000  # enough rows that no epoch ends inside the timed steps


def _data() -> tuple[WindowDataset, WindowDataset]:
    # Synthetic rows: only throughput is measured here.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = (X[:, 0] * 0.1 + rng.normal(size=ROWS) * 0.01).astype(np.float32)
    ends = np.arange(WINDOW - 1, ROWS)
    scaler = Scaler.fit(X, np.arange(ROWS))
    train = WindowDataset(X, y, ends[:-100], window=WINDOW, scaler=scaler)
    val = WindowDataset(X, y, ends[-100:], window=WINDOW, scaler=scaler)
    return train, val


def run_trainer(
    engine: str, per_rank_batch: int, warmup: int, steps: int, ckpt: str
) -> dict[str, Any]:
    """One rank's part: train ``warmup + steps`` steps, time the last ``steps``."""
    env = DistEnv()
    train, val = _data()
    torch.manual_seed(0)
    model = build_model(
        MODEL, model_config(MODEL, PARAMS), n_features=FEATURES, window=WINDOW, head="regression"
    )
    cfg = TrainerConfig(
        engine=engine,
        zero_stage=2,
        epochs=1,
        max_steps=warmup + steps,
        global_batch_size=per_rank_batch * env.world_size,
        micro_batch_size=per_rank_batch,
    )
    marks: dict[int, tuple[float, float]] = {}

    def mark(_: Trainer, step: int) -> None:
        marks[step] = (time.perf_counter(), time.process_time())

    Trainer(
        model,
        cfg,
        head="regression",
        train=train,
        val=val,
        checkpoint_dir=ckpt,
        env=env,
        step_hook=mark,
    ).run()
    return _rates(marks, warmup, steps, cfg.global_batch_size)


def _rates(
    marks: dict[int, tuple[float, float]], warmup: int, steps: int, batch: int
) -> dict[str, Any]:
    """Wall-clock samples/s (median over chunks of steps, robust to bursts of load from other
    processes) and samples per CPU-second of this process (what contention cannot inflate)."""
    chunk = max(1, steps // 4)
    rates = [
        chunk * batch / (marks[s + chunk][0] - marks[s][0])
        for s in range(warmup, warmup + steps - chunk + 1, chunk)
    ]
    wall = marks[warmup + steps][0] - marks[warmup][0]
    cpu = marks[warmup + steps][1] - marks[warmup][1]
    return {
        "samples_per_s": float(np.median(rates)),
        "elapsed_s": wall,
        "cpu_s": cpu,
        "samples_per_cpu_s": steps * batch / cpu,
    }


def bare_loop(per_rank_batch: int, warmup: int, steps: int) -> dict[str, Any]:
    """The same model and batches in a plain torch loop: what the trainer is compared with."""
    train, _ = _data()
    torch.manual_seed(0)
    model = build_model(
        MODEL, model_config(MODEL, PARAMS), n_features=FEATURES, window=WINDOW, head="regression"
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    perm = np.random.default_rng(0).permutation(len(train))
    marks = {}
    for s in range(warmup + steps):
        xb, yb = train.batch(perm[s * per_rank_batch : (s + 1) * per_rank_batch])
        loss = torch.nn.functional.mse_loss(model(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        marks[s + 1] = (time.perf_counter(), time.process_time())
    return _rates(marks, warmup, steps, per_rank_batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few steps only")
    ap.add_argument("--batch", type=int, default=64, help="windows per rank per step")
    args = ap.parse_args()
    warmup, steps = (2, 6) if args.quick else (5, 200)
    torch.set_num_threads(1)
    common = {
        "model": MODEL,
        **PARAMS,
        "window": WINDOW,
        "features": FEATURES,
        "per_rank_batch": args.batch,
        "timed_steps": steps,
        "threads_per_rank": 1,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_loop(args.batch, warmup, steps)
        print(
            json.dumps({"bench": "train", "run": "bare_torch_loop", "ranks": 1, **common, **bare})
        )
        single = run_trainer("ddp", args.batch, warmup, steps, f"{tmp}/single")
        print(
            json.dumps(
                {
                    "bench": "train",
                    "run": "trainer_single",
                    "ranks": 1,
                    **common,
                    **single,
                    "vs_bare_loop": single["samples_per_s"] / bare["samples_per_s"],
                }
            )
        )
        for engine in ("ddp", "deepspeed"):
            res = spawn(run_trainer, 2, args=(engine, args.batch, warmup, steps, f"{tmp}/{engine}"))
            sps = min(r["samples_per_s"] for r in res)  # the slowest rank sets the pace
            # Per-rank batch is fixed, so each rank's samples per CPU-second vs the single
            # process's is the overhead that distribution adds, whatever else loads the machine.
            per_rank_per_cpu_s = min(r["samples_per_cpu_s"] for r in res) / 2
            print(
                json.dumps(
                    {
                        "bench": "train",
                        "run": f"trainer_{engine}",
                        "ranks": 2,
                        **common,
                        "samples_per_s": sps,
                        "elapsed_s": max(r["elapsed_s"] for r in res),
                        "cpu_s": sum(r["cpu_s"] for r in res),
                        "scaling_efficiency": sps / (2 * single["samples_per_s"]),
                        "cpu_efficiency": per_rank_per_cpu_s / single["samples_per_cpu_s"],
                        **({"zero_stage": 2} if engine == "deepspeed" else {}),
                    }
                )
            )


if __name__ == "__main__":
    main()
