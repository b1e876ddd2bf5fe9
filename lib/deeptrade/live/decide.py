"""The decision itself, without I/O: closed bars -> features -> scores -> targets -> orders.

Kept apart from the engine so that its latency can be measured alone (``bench/live.py``) and so
that nothing in it can reach the network.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from deeptrade.live.protocols import Bar, FeatureState, Policy, Predictor
from deeptrade.live.risk import ProposedOrder


def whole_shares(x: float) -> float:
    """Toward zero (Alpaca takes fractional quantities for market day orders only)."""
    return float(math.trunc(x + (1e-9 if x > 0 else -1e-9)))


class Decider:
    """Per-symbol feature windows in one preallocated (symbols, window, features) array."""

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        features: FeatureState,
        predictor: Predictor,
        policy: Policy,
    ) -> None:
        self.symbols = list(symbols)
        self.features = features
        self.predictor = predictor
        self.policy = policy
        self.names = list(predictor.feature_names)
        self.window = int(predictor.window)
        if self.window < 1:
            raise ValueError(f"predictor.window must be >= 1, got {self.window}")
        self._index = {s: i for i, s in enumerate(self.symbols)}
        n = len(self.symbols)
        self._x = np.full((n, self.window, len(self.names)), np.nan)
        self._seen = np.zeros(n, dtype=np.int64)
        """Feature rows appended per symbol."""
        self._last_bad = np.full(n, -1, dtype=np.int64)
        """Position (in appends) of each symbol's latest row with a NaN feature."""
        self.last_bar: dict[str, dt.datetime] = {}
        """Open time of the latest bar fed per symbol."""
        self.last_close: dict[str, float] = {}

    def update(self, bars: Iterable[Bar]) -> None:
        """Feed closed bars (any symbols, any order: they are fed in time order)."""
        for bar in sorted(bars, key=lambda b: (b.timestamp, b.symbol)):
            i = self._index.get(bar.symbol)
            if i is None:
                continue
            feats = self.features.update(bar)
            row = [feats.get(n, math.nan) for n in self.names]
            x = self._x[i]
            x[:-1] = x[1:]
            x[-1] = row
            if not all(math.isfinite(v) for v in row):
                self._last_bad[i] = self._seen[i]
            self._seen[i] += 1
            self.last_bar[bar.symbol] = bar.timestamp
            self.last_close[bar.symbol] = bar.close

    def predict(self) -> dict[str, float]:
        """Scores of the symbols whose last ``window`` feature rows are all finite."""
        ready = np.flatnonzero(self._seen - 1 - self._last_bad >= self.window)
        if ready.size == 0:
            return {}
        scores = np.asarray(self.predictor.predict(self._x[ready]), dtype=np.float64).reshape(-1)
        assert scores.shape == (ready.size,), scores.shape
        return {
            self.symbols[i]: float(v)
            for i, v in zip(ready.tolist(), scores, strict=True)
            if math.isfinite(v)
        }

    def targets(self, preds: Mapping[str, float], *, equity: float) -> dict[str, float]:
        return self.policy.targets(preds, prices=self.last_close, equity=equity)

    def proposals(
        self, targets: Mapping[str, float], effective: Mapping[str, float]
    ) -> list[ProposedOrder]:
        """Orders for target - effective position, whole shares, sorted by symbol."""
        out = []
        for sym in sorted(targets):
            if sym not in self.last_close:
                continue
            target, cur = whole_shares(targets[sym]), effective.get(sym, 0.0)
            if cur * target < 0:
                # Alpaca refuses one order that flips a position; close now, open next cycle.
                target = 0.0
            delta = target - cur
            if abs(delta) < 1:
                continue
            out.append(
                ProposedOrder(
                    symbol=sym,
                    side="buy" if delta > 0 else "sell",
                    qty=abs(delta),
                    decision_price=self.last_close[sym],
                )
            )
        return out
