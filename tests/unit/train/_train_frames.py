"""Shared helpers of the train tests: small feature frames in the features stage's layout
(timestamp UTC, float features, warmup, label = log(close[t + h] / close[t])) and the
module-level functions spawned ranks run (they must be importable by the child processes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def make_frame(close: np.ndarray, timestamps: pd.DatetimeIndex, horizon: int = 1) -> pd.DataFrame:
    """Three point-in-time features from closes (all use data <= t) and the forward label."""
    logc = pd.Series(np.log(close))
    r1 = logc.diff()
    f = pd.DataFrame(
        {
            "timestamp": timestamps,
            "close": close,
            "ret_1": r1.to_numpy(),
            "ret_5": logc.diff(5).to_numpy(),
            "vol_10": r1.rolling(10).std().to_numpy(),
        }
    )
    f["warmup"] = f[["ret_1", "ret_5", "vol_10"]].isna().any(axis=1).to_numpy()
    f["label"] = (logc.shift(-horizon) - logc).to_numpy()
    return f


def synthetic_frame(n: int = 400, seed: int = 0, horizon: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    ts = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    return make_frame(close, ts, horizon)


def sp500_frame(n: int = 600, horizon: int = 1) -> pd.DataFrame:
    """The last ``n`` S&P 500 daily bars shipped with ``arch``."""
    from arch.data import sp500

    bars = sp500.load().iloc[-n:]
    ts = pd.DatetimeIndex(bars.index).tz_localize("UTC").as_unit("ns")
    return make_frame(bars["Adj Close"].to_numpy(np.float64), ts, horizon)


def train_in_two_phases(
    spec: Any, frame: pd.DataFrame, out_dir: str, checkpoint_dir: str, stop_at: int
) -> dict:
    """Run by each spawned rank: train until ``stop_at`` steps (checkpoint), then train again,
    which must resume from that checkpoint and finish."""
    import dataclasses

    from deeptrade.train import train_model

    first = dataclasses.replace(spec, trainer=dataclasses.replace(spec.trainer, max_steps=stop_at))
    r1 = train_model(first, frame, None, out_dir, checkpoint_dir=checkpoint_dir)
    assert r1["status"] == "max_steps", r1["status"]
    return train_model(spec, frame, None, out_dir, checkpoint_dir=checkpoint_dir)


def oom_on_rank_1_above_4(event: str, micro_batch: int) -> None:
    """Fault hook for spawned ranks: rank 1 alone runs out of memory above 4 windows."""
    import os

    import torch

    if event == "forward" and micro_batch > 4 and os.environ.get("SLURM_PROCID") == "1":
        raise torch.OutOfMemoryError("CUDA out of memory (injected on rank 1)")
