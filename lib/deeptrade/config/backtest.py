"""Backtest costs/fills/sizing config, numba-free so composing a job config stays fast.

It configures ``deeptrade.backtest.engine``; importing that package loads numba and scipy
(about a second), which every ``deeptrade`` command would otherwise pay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FILL_MODES = ("next_open", "close")
DIRECTIONS = ("long_short", "long_only", "short_only")
SIZINGS = ("fixed_fraction", "vol_target")


@dataclass(kw_only=True)
class BacktestConfig:
    """Costs, fills and sizing of a backtest. Rates are in basis points (1 bps = 0.01 %)."""

    initial_cash: float = 100_000.0
    """Starting equity, in account currency."""
    fill: str = "next_open"
    """'next_open': decided at bar t's close, filled at t+1's open; 'close': filled at t's close."""
    direction: str = "long_short"
    """'long_short'; 'long_only' turns negative targets into flat; 'short_only' the reverse."""
    commission_bps: float = 0.0
    """Commission in bps of each fill's notional."""
    fee_per_share: float = 0.0
    """Commission per share (or contract) on each fill, on top of ``commission_bps``."""
    min_fee: float = 0.0
    """Minimum of the per-share part per order; with ``fee_per_share=0`` a fixed fee per order."""
    slippage_bps: float = 0.0
    """Adverse price move per fill, in bps of the fill price (applied on every fill)."""
    slippage_atr: float = 0.0
    """Adverse price move per fill as a fraction of ATR known at decision time."""
    atr_window: int = 14
    """Wilder ATR window for ``slippage_atr``."""
    sizing: str = "fixed_fraction"
    """'fixed_fraction': |target| x fraction of equity; 'vol_target': scaled to ``vol_target``."""
    fraction: float = 1.0
    """Fraction of equity per unit of |target| (``fixed_fraction``)."""
    vol_target: float = 0.15
    """Annualised volatility a unit target aims for (``vol_target``)."""
    vol_window: int = 20
    """Bars of log returns in the realised-volatility estimate (``vol_target``)."""
    max_leverage: float = 1.0
    """Cap on gross exposure / equity when orders are sized (new orders are scaled down)."""
    stop_loss: float | None = None
    """Exit when the price moves this fraction against the average entry price (e.g. 0.05)."""
    take_profit: float | None = None
    """Exit when the price moves this fraction in favour of the average entry price."""
    lot_size: float = 0.0
    """Share granularity: 0 trades fractional shares, 1 whole shares (rounded toward zero)."""
    close_at_end: bool = False
    """Liquidate every position at the last bar's close (walk-forward windows end flat)."""
    periods_per_year: float = 252.0
    """Bars per year, for annualised metrics and volatility targeting."""

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("fill", self.fill, FILL_MODES),
            ("direction", self.direction, DIRECTIONS),
            ("sizing", self.sizing, SIZINGS),
        ):
            if value not in allowed:
                raise ValueError(f"BacktestConfig.{name}={value!r}; use one of {allowed}")
        for name in (
            "commission_bps",
            "fee_per_share",
            "min_fee",
            "slippage_bps",
            "slippage_atr",
            "lot_size",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"BacktestConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("initial_cash", "fraction", "vol_target", "max_leverage", "periods_per_year"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BacktestConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("stop_loss", "take_profit"):
            v = getattr(self, name)
            if v is not None and not 0 < v < (1 if name == "stop_loss" else math.inf):
                raise ValueError(f"BacktestConfig.{name}={v}: give a fraction such as 0.05")
        if self.sizing == "fixed_fraction" and self.fraction > self.max_leverage:
            raise ValueError(
                f"BacktestConfig.fraction={self.fraction} exceeds max_leverage="
                f"{self.max_leverage}: raise max_leverage or lower fraction"
            )
        if self.atr_window < 1 or self.vol_window < 2:
            raise ValueError("BacktestConfig: atr_window must be >= 1 and vol_window >= 2")
