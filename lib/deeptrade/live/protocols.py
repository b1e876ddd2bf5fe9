"""The narrow seams between the live engine and the research stack.

The engine needs three things from a release: per-symbol features that update one closed bar
at a time, a model that scores a feature matrix, and a policy that turns scores into target
positions. These protocols are all it relies on, so the streaming feature calculator, the
trained bundle and the backtest strategies plug in without the engine importing them (thin
adapters live in ``deeptrade.live.adapters``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed OHLCV bar of one symbol; ``timestamp`` is the bar's open time in UTC."""

    symbol: str
    timestamp: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@runtime_checkable
class FeatureState(Protocol):
    def update(self, bar: Bar) -> dict[str, float]:
        """Feed one closed bar of ``bar.symbol``; return that symbol's features after it.

        Values are NaN while the symbol is still warming up. Bars of one symbol arrive in
        time order, each exactly once.
        """
        ...


@runtime_checkable
class Predictor(Protocol):
    feature_names: Sequence[str]
    """Feature order along the last axis of what ``predict`` gets."""
    window: int
    """Bars of feature history per prediction (1 for models that look at the last bar only)."""

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """(n_symbols, window, n_features) float array -> (n_symbols,) scores.

        ``deeptrade.train.bundle.Bundle`` fits as is (its ``predict`` takes raw windows).
        """
        ...


@runtime_checkable
class Policy(Protocol):
    def targets(
        self, preds: Mapping[str, float], *, prices: Mapping[str, float], equity: float
    ) -> dict[str, float]:
        """Signed target quantity in shares per symbol; a symbol left out keeps its position."""
        ...
