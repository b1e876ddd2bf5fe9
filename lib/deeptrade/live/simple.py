"""Small, real implementations of the live protocols.

They are what the tests and the latency benchmark run when no trained release is at hand, and
a readable reference for what the protocols mean. Nothing here is a mock: each is a complete,
if modest, feature calculator / model / policy.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from deeptrade.live.protocols import Bar


@dataclass
class _SymbolState:
    returns: deque[float]
    last_close: float | None = None
    total: float = 0.0
    total_sq: float = 0.0


class RollingFeatures:
    """Four O(1)-per-bar features per symbol over the last ``window`` log returns.

    ``ret_1`` last log return, ``mom`` summed log return, ``vol`` return standard deviation,
    ``z`` momentum in units of its own volatility. NaN until ``window`` returns are seen.
    """

    feature_names = ("ret_1", "mom", "vol", "z")

    def __init__(self, window: int = 20) -> None:
        if window < 2:
            raise ValueError(f"RollingFeatures window must be >= 2, got {window}")
        self.window = window
        self._state: dict[str, _SymbolState] = {}
        self._last_ts: dict[str, dt.datetime] = {}

    def update(self, bar: Bar) -> dict[str, float]:
        st = self._state.get(bar.symbol)
        if st is None:
            st = self._state[bar.symbol] = _SymbolState(returns=deque(maxlen=self.window))
        prev = self._last_ts.get(bar.symbol)
        assert prev is None or bar.timestamp > prev, f"{bar.symbol}: bars out of order"
        self._last_ts[bar.symbol] = bar.timestamp
        if st.last_close is not None and st.last_close > 0 and bar.close > 0:
            r = math.log(bar.close / st.last_close)
            if len(st.returns) == self.window:
                old = st.returns[0]
                st.total -= old
                st.total_sq -= old * old
            st.returns.append(r)
            st.total += r
            st.total_sq += r * r
        st.last_close = bar.close
        n = len(st.returns)
        if n < self.window:
            nan = float("nan")
            return {"ret_1": st.returns[-1] if n else nan, "mom": nan, "vol": nan, "z": nan}
        mean = st.total / n
        var = max(st.total_sq / n - mean * mean, 0.0) * n / (n - 1)
        vol = math.sqrt(var)
        z = st.total / (vol * math.sqrt(n)) if vol > 0 else 0.0
        return {"ret_1": st.returns[-1], "mom": st.total, "vol": vol, "z": z}


@dataclass(kw_only=True)
class LinearPredictor:
    """``score = features @ weights + bias`` over named features of the last bar."""

    weights: Mapping[str, float]
    """Feature name -> coefficient; the keys fix the feature order."""
    bias: float = 0.0
    window: int = 1
    """Only the last bar's features are used; kept at 1."""

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("LinearPredictor needs at least one weight")
        self.feature_names: Sequence[str] = tuple(self.weights)
        self._w = np.array([self.weights[k] for k in self.feature_names], dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return matrix[:, -1, :] @ self._w + self.bias


@dataclass(kw_only=True)
class ThresholdPolicy:
    """Long a fixed notional above ``long_above``, short it below ``short_below``, else flat."""

    long_above: float = 0.0
    """Score above which the symbol is held long."""
    short_below: float | None = None
    """Score below which the symbol is held short (None: never short, flat instead)."""
    notional_per_symbol: float = 1_000.0
    """Currency amount per held symbol; converted to whole shares at the decision price."""
    symbols: Sequence[str] = field(default_factory=tuple)
    """Restrict targets to these symbols (empty: every symbol with a score)."""

    def __post_init__(self) -> None:
        if self.short_below is not None and self.short_below > self.long_above:
            raise ValueError(
                f"ThresholdPolicy: short_below ({self.short_below}) must be <= long_above "
                f"({self.long_above}), otherwise a score could be both long and short"
            )
        if self.notional_per_symbol <= 0:
            raise ValueError("ThresholdPolicy.notional_per_symbol must be > 0")

    def targets(
        self, preds: Mapping[str, float], *, prices: Mapping[str, float], equity: float
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        allowed = set(self.symbols)
        for sym, score in preds.items():
            if (allowed and sym not in allowed) or not math.isfinite(score):
                continue
            price = prices.get(sym, float("nan"))
            if not (price > 0):
                continue
            shares = math.floor(self.notional_per_symbol / price)
            if score > self.long_above:
                out[sym] = float(shares)
            elif self.short_below is not None and score < self.short_below:
                out[sym] = -float(shares)
            else:
                out[sym] = 0.0
        return out
