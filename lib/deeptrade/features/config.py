"""`FeatureConfig`: every window and period of the feature set, with TA-Lib's defaults.

Changing any field changes the feature spec hash (`deeptrade.features.spec`), so a model
trained on one configuration is refused by a live job running another.
"""

from __future__ import annotations

import dataclasses
import zoneinfo
from dataclasses import dataclass

# Windows longer than this are almost certainly a typo (TA-Lib's own upper bound).
MAX_WINDOW = 100_000


@dataclass(kw_only=True)
class FeatureConfig:
    """Windows/periods of the point-in-time feature set (all in bars)."""

    return_horizons: tuple[int, ...] = (1, 5, 20)
    """Log-return look-backs: log_ret_{k} = log(close / close k bars ago)."""
    rvol_windows: tuple[int, ...] = (20, 60)
    """Realised volatility windows: sample std (ddof=1) of 1-bar log returns, not annualised."""
    range_vol_window: int = 20
    """Window of the Parkinson and Garman-Klass range volatility estimators."""
    ma_windows: tuple[int, ...] = (10, 20, 50, 200)
    """SMA and EMA windows; features are close / MA - 1 (TA-Lib SMA/EMA, EMA seeded by SMA)."""
    rsi_period: int = 14
    """RSI period (Wilder smoothing, TA-Lib RSI)."""
    macd_fast: int = 12
    """MACD fast EMA period."""
    macd_slow: int = 26
    """MACD slow EMA period (must exceed macd_fast)."""
    macd_signal: int = 9
    """MACD signal EMA period."""
    bb_period: int = 20
    """Bollinger band period (SMA middle band, population std)."""
    bb_nbdev: float = 2.0
    """Bollinger band width in standard deviations (both sides)."""
    atr_period: int = 14
    """ATR period (Wilder); the feature is ATR / close."""
    adx_period: int = 14
    """ADX, +DI and -DI period (Wilder)."""
    stoch_fastk: int = 5
    """Stochastic fast %K look-back."""
    stoch_slowk: int = 3
    """Stochastic slow %K SMA period."""
    stoch_slowd: int = 3
    """Stochastic slow %D SMA period."""
    willr_period: int = 14
    """Williams %R look-back."""
    cci_period: int = 20
    """Commodity Channel Index period."""
    mfi_period: int = 14
    """Money Flow Index period."""
    obv_z_window: int = 20
    """Window of the on-balance-volume z-score (ddof=1)."""
    roc_period: int = 10
    """Rate of change period (TA-Lib ROC, in percent)."""
    momentum_periods: tuple[int, ...] = (10, 20)
    """Momentum periods; mom_{k} = (close - close k bars ago) / close."""
    volume_z_window: int = 20
    """Window of the volume z-score (ddof=1)."""
    vwap_window: int = 20
    """Rolling VWAP window; bar price is the `vwap` column when present, else (H+L+C)/3."""
    moments_window: int = 20
    """Window of the rolling skew and excess kurtosis of 1-bar log returns (>= 4)."""
    session_tz: str = "UTC"
    """Zone of the time-of-day / day-of-week features. Daily bars are dated at 00:00 UTC, so
    keep UTC when a feature set includes daily bars; an exchange zone suits intraday-only sets."""
    benchmark_symbol: str | None = "SPY"
    """Symbol whose close the features job passes as `benchmark_close` (None: no benchmark)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_windows", "_horizons", "_periods")):
                if isinstance(value, list):  # YAML/Hydra hand us lists
                    value = tuple(value)
                    setattr(self, f.name, value)
                if not value or len(set(value)) != len(value):
                    raise ValueError(
                        f"FeatureConfig.{f.name}={value!r}: give a non-empty list of distinct "
                        "positive integers"
                    )
                for v in value:
                    _check_window(f.name, v, minimum=1)
            elif isinstance(value, int) and not isinstance(value, bool):
                _check_window(f.name, value, minimum=1)
        for name in ("rvol_windows", "ma_windows"):
            if min(getattr(self, name)) < 2:
                raise ValueError(f"FeatureConfig.{name}: every window must be >= 2")
        for name in (
            "range_vol_window",
            "rsi_period",
            "macd_fast",
            "macd_signal",
            "bb_period",
            "atr_period",
            "adx_period",
            "willr_period",
            "cci_period",
            "mfi_period",
            "obv_z_window",
            "volume_z_window",
        ):
            if getattr(self, name) < 2:
                raise ValueError(f"FeatureConfig.{name}={getattr(self, name)}: must be >= 2")
        if self.moments_window < 4:
            raise ValueError(
                f"FeatureConfig.moments_window={self.moments_window}: excess kurtosis needs >= 4"
            )
        if self.macd_fast >= self.macd_slow:
            raise ValueError(
                f"FeatureConfig: macd_fast={self.macd_fast} must be below "
                f"macd_slow={self.macd_slow}"
            )
        if not self.bb_nbdev > 0:
            raise ValueError(f"FeatureConfig.bb_nbdev={self.bb_nbdev}: must be > 0")
        self.bb_nbdev = float(self.bb_nbdev)
        try:
            zoneinfo.ZoneInfo(self.session_tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"FeatureConfig.session_tz={self.session_tz!r} is not an IANA time zone "
                "(e.g. 'UTC', 'America/New_York')"
            ) from None


def _check_window(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_WINDOW:
        raise ValueError(
            f"FeatureConfig.{name}: {value!r} is not an integer in [{minimum}, {MAX_WINDOW}]"
        )
