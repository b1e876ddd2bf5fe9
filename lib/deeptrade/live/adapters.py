"""Thin adapters from the research stack to the live protocols.

* ``deeptrade.train.bundle.Bundle`` already is a ``Predictor`` (``feature_names``, ``window``,
  ``predict(raw windows)``): pass ``load_bundle(dir)`` to the engine as is.
* ``PredictionPolicy`` turns scores into share targets with the backtest's own rule,
  ``deeptrade.backtest.strategies.positions_from_predictions``, so live trades what the
  backtest simulated.

Research modules are imported lazily: the engine and its tests do not pay for numba or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(kw_only=True)
class PredictionPolicy:
    """Share targets = backtest weight x ``notional_per_unit`` / price, in whole shares.

    Symbols are ordered by name before ranking (ties go to the earlier one, as in the
    backtest's column order).
    """

    mode: str = "threshold"
    """threshold (long above center + threshold, short below center - threshold) | rank."""
    threshold: float = 0.0
    center: float = 0.0
    """Neutral score: 0 for regression heads, 0.5 for direction (probability) heads."""
    top_k: int = 1
    """rank mode: how many symbols per side; each gets weight 1/top_k."""
    long_only: bool = True
    notional_per_unit: float = 1_000.0
    """Currency held per unit of weight (threshold mode: per symbol; rank: per side)."""

    def __post_init__(self) -> None:
        if self.mode not in ("threshold", "rank"):
            raise ValueError(f"policy.mode={self.mode!r}: use threshold or rank")
        if self.threshold < 0 or self.top_k < 1 or self.notional_per_unit <= 0:
            raise ValueError(
                "policy: threshold must be >= 0, top_k >= 1 and notional_per_unit > 0 "
                f"(got {self.threshold}, {self.top_k}, {self.notional_per_unit})"
            )

    def targets(
        self, preds: Mapping[str, float], *, prices: Mapping[str, float], equity: float
    ) -> dict[str, float]:
        from deeptrade.backtest.strategies import positions_from_predictions

        syms = sorted(s for s, v in preds.items() if math.isfinite(v))
        if not syms:
            return {}
        weights = positions_from_predictions(
            np.array([[preds[s] for s in syms]], dtype=np.float64),
            self.mode,
            threshold=self.threshold,
            center=self.center,
            top_k=self.top_k,
            long_only=self.long_only,
        )[0]
        out = {}
        for sym, w in zip(syms, weights, strict=True):
            px = prices.get(sym, math.nan)
            if px > 0:
                out[sym] = float(math.trunc(w * self.notional_per_unit / px))
        return out
