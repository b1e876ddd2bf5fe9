"""Live features: `StreamingFeatures` keeps one symbol's state and adds one bar at a time.

It runs exactly the batch code (`pipeline.advance`) on one-bar blocks, so every value equals
what `compute_features` gives for the same bars (tests/unit/features/test_streaming.py
checks every feature on real data).

Cost per bar is O(1) in the length of the history: running sums and EMA/Wilder recursions
for the recursive indicators, and for the window features one pass over their fixed window
(at most `max(windows)` bars: the CCI mean deviation, skew/kurtosis, window sums and
extremes), plus copying the last `max(windows)` bars of history.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deeptrade.features.config import FeatureConfig
from deeptrade.features.core import BenchmarkLike, to_block
from deeptrade.features.pipeline import Block, Plan, advance
from deeptrade.features.spec import feature_names, warmup_bars

BAR_FIELDS = ("open", "high", "low", "close", "volume")


class StreamingFeatures:
    """Per-symbol incremental feature calculator; `update` one bar at a time."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self._plan = Plan.of(self.config)
        self._state = self._plan.fresh_state()
        self._names = feature_names(self.config)
        self._warmup = warmup_bars(self.config)
        self._last_ns: int | None = None
        self._out = np.empty((self._plan.n_features, 1))

    @classmethod
    def from_history(
        cls,
        bars: pd.DataFrame,
        *,
        config: FeatureConfig | None = None,
        benchmark_close: BenchmarkLike = None,
    ) -> StreamingFeatures:
        """A calculator warmed up on `bars` (validated like `compute_features` input).

        EMA-type features depend on the whole past: live values equal the batch values only
        when the history starts where the batch series started.
        """
        self = cls(config)
        block = to_block(bars, benchmark_close)
        if len(block.close):
            advance(block, self._state, self._plan, np.empty((self._plan.n_features, len(bars))))
            self._last_ns = int(block.ts_ns[-1])
        return self

    @property
    def bars_seen(self) -> int:
        return int(self._state["t"])

    @property
    def ready(self) -> bool:
        """True once every feature is past its warm-up window."""
        return self.bars_seen >= self._warmup

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the state (e.g. to checkpoint the live job); see `restore`."""
        return {"state": copy.deepcopy(self._state), "last_ns": self._last_ns}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self._state = copy.deepcopy(snapshot["state"])
        self._last_ns = snapshot["last_ns"]

    def update(
        self, bar: Mapping[str, Any] | pd.Series, benchmark_close: float | None = None
    ) -> dict[str, float]:
        """Add the next bar; returns every feature at that bar (NaN while warming up).

        bar: timestamp (tz-aware, or int ns UTC), open, high, low, close, volume and
        optionally vwap. benchmark_close: the benchmark's close at the same timestamp.
        """
        block = self._bar_block(bar, benchmark_close)
        advance(block, self._state, self._plan, self._out)
        self._last_ns = int(block.ts_ns[0])
        return dict(zip(self._names, self._out[:, 0].tolist(), strict=True))

    def _bar_block(self, bar: Mapping[str, Any] | pd.Series, bench: float | None) -> Block:
        missing = [k for k in ("timestamp", *BAR_FIELDS) if k not in bar]
        if missing:
            raise ValueError(f"bar lacks {missing}; give timestamp, open, high, low, close, volume")
        ts = _to_ns(bar["timestamp"])
        if self._last_ns is not None and ts <= self._last_ns:
            raise ValueError(
                f"bar timestamp {pd.Timestamp(ts, tz='UTC')} is not after the previous bar "
                f"{pd.Timestamp(self._last_ns, tz='UTC')}; bars must arrive in order, once"
            )
        values = {}
        for k in BAR_FIELDS:
            x = float(bar[k])
            if not math.isfinite(x) or x < 0.0 or (x == 0.0 and k != "volume"):
                raise ValueError(f"bar {k}={bar[k]!r} at {pd.Timestamp(ts, tz='UTC')} is invalid")
            values[k] = np.array([x])
        vwap = bar.get("vwap")
        vwap = np.nan if vwap is None else float(vwap)
        if vwap <= 0.0:
            raise ValueError(f"bar vwap={vwap!r} must be > 0 (or missing/NaN)")
        bench_value = np.nan if bench is None else float(bench)
        if bench_value <= 0.0:
            raise ValueError(f"benchmark_close={bench!r} must be > 0 (or None)")
        return Block(
            **values,
            bar_price=np.array([vwap]),
            bench=np.array([bench_value]),
            ts_ns=np.array([ts], dtype=np.int64),
        )


def _to_ns(stamp: Any) -> int:
    if isinstance(stamp, int | np.integer):
        return int(stamp)
    ts = pd.Timestamp(stamp)
    if ts.tz is None:
        raise ValueError(f"bar timestamp {stamp!r} is naive; give a tz-aware (UTC) timestamp")
    return int(ts.tz_convert("UTC").as_unit("ns").value)
