"""Feature names, warm-up lengths and the spec hash: the data contract of the features table.

`feature_layout` lists the features in output column order, grouped by the kernel family
that computes them (see `deeptrade.features.kernels`). Each entry carries the feature's
first valid bar index (0-based): before it the value is NaN and the row is marked `warmup`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from deeptrade.features.config import FeatureConfig

# Bump when any feature's definition changes (not its parameters: those are in the spec).
FEATURE_SET_VERSION = "1"
TIME_FEATURES: tuple[str, ...] = ("tod_sin", "tod_cos", "dow_sin", "dow_cos")
BENCHMARK_FEATURE = "rel_log_ret_1"

# One line per feature family; the spec carries them so a release documents its inputs.
FEATURE_DOCS: dict[str, str] = {
    "log_ret": "log(close / close k bars ago)",
    "rvol": "sample std (ddof=1) of 1-bar log returns over the window",
    "parkinson_vol": "sqrt(mean(log(H/L)^2) / (4 ln 2)) over the window",
    "gk_vol": "sqrt(max(mean(0.5 log(H/L)^2 - (2 ln2 - 1) log(C/O)^2), 0)) over the window",
    "ret_skew": "bias-corrected skew of 1-bar log returns (pandas/scipy G1); 0 if flat",
    "ret_kurt": "bias-corrected excess kurtosis of 1-bar log returns (G2); 0 if flat",
    "sma_ratio": "close / TA-Lib SMA - 1",
    "ema_ratio": "close / TA-Lib EMA - 1 (seeded with the SMA of the first window)",
    "rsi": "TA-Lib RSI (Wilder), 0..100",
    "macd": "TA-Lib MACD line / close",
    "macd_signal": "TA-Lib MACD signal / close",
    "macd_hist": "TA-Lib MACD histogram / close",
    "bb_pctb": "(close - lower) / (upper - lower) of TA-Lib BBANDS; 0.5 on a flat window",
    "bb_width": "(upper - lower) / middle of TA-Lib BBANDS",
    "roc": "TA-Lib ROC (percent)",
    "mom": "TA-Lib MOM / close",
    "atr_norm": "TA-Lib ATR / close",
    "adx": "TA-Lib ADX, 0..100",
    "plus_di": "TA-Lib PLUS_DI, 0..100",
    "minus_di": "TA-Lib MINUS_DI, 0..100",
    "stoch_k": "TA-Lib STOCH slow %K (SMA smoothing), 0..100",
    "stoch_d": "TA-Lib STOCH slow %D (SMA smoothing), 0..100",
    "willr": "TA-Lib WILLR, -100..0",
    "cci": "TA-Lib CCI",
    "mfi": "TA-Lib MFI, 0..100",
    "obv_z": "z-score (ddof=1) of TA-Lib OBV over the window; 0 on a flat window",
    "volume_z": "z-score (ddof=1) of volume over the window; 0 on a flat window",
    "vwap_dev": "close / rolling VWAP - 1; bar price = vwap column if present else (H+L+C)/3",
    "hl_range": "(high - low) / close",
    "gap": "open / previous close - 1 (overnight gap on daily bars, bar-to-bar intraday)",
    "rel_log_ret_1": "1-bar log return minus the benchmark's over the same bars; NaN if none",
    "tod_sin": "sin(2 pi second-of-day / 86400) in session_tz (whole seconds)",
    "tod_cos": "cos(2 pi second-of-day / 86400) in session_tz (whole seconds)",
    "dow_sin": "sin(2 pi weekday / 7) in session_tz, Monday = 0",
    "dow_cos": "cos(2 pi weekday / 7) in session_tz, Monday = 0",
}

# Kernel families, in output order (see deeptrade.features.kernels).
FAMILIES: tuple[str, ...] = ("returns", "close", "range", "volume", "bar", "time")


def family_layout(config: FeatureConfig) -> dict[str, list[tuple[str, int]]]:
    """Per family: (name, first valid bar index) of its features, in output order."""
    c = config
    macd_start = c.macd_slow + c.macd_signal - 2
    stoch_start = c.stoch_fastk + c.stoch_slowk + c.stoch_slowd - 3
    w = c.moments_window
    return {
        "returns": [
            *[(f"log_ret_{k}", k) for k in c.return_horizons],
            *[(f"rvol_{w}", w) for w in c.rvol_windows],
            (f"parkinson_vol_{c.range_vol_window}", c.range_vol_window - 1),
            (f"gk_vol_{c.range_vol_window}", c.range_vol_window - 1),
            (f"ret_skew_{w}", w),
            (f"ret_kurt_{w}", w),
        ],
        "close": [
            *[(f"sma_ratio_{w}", w - 1) for w in c.ma_windows],
            *[(f"ema_ratio_{w}", w - 1) for w in c.ma_windows],
            (f"rsi_{c.rsi_period}", c.rsi_period),
            ("macd", macd_start),
            ("macd_signal", macd_start),
            ("macd_hist", macd_start),
            (f"bb_pctb_{c.bb_period}", c.bb_period - 1),
            (f"bb_width_{c.bb_period}", c.bb_period - 1),
            (f"roc_{c.roc_period}", c.roc_period),
            *[(f"mom_{k}", k) for k in c.momentum_periods],
        ],
        "range": [
            (f"atr_norm_{c.atr_period}", c.atr_period),
            (f"adx_{c.adx_period}", 2 * c.adx_period - 1),
            (f"plus_di_{c.adx_period}", c.adx_period),
            (f"minus_di_{c.adx_period}", c.adx_period),
            ("stoch_k", stoch_start),
            ("stoch_d", stoch_start),
            (f"willr_{c.willr_period}", c.willr_period - 1),
        ],
        "volume": [
            (f"cci_{c.cci_period}", c.cci_period - 1),
            (f"mfi_{c.mfi_period}", c.mfi_period),
            (f"obv_z_{c.obv_z_window}", c.obv_z_window - 1),
            (f"volume_z_{c.volume_z_window}", c.volume_z_window - 1),
            (f"vwap_dev_{c.vwap_window}", c.vwap_window - 1),
        ],
        "bar": [("hl_range", 0), ("gap", 1), (BENCHMARK_FEATURE, 1)],
        "time": [(name, 0) for name in TIME_FEATURES],
    }


def feature_layout(config: FeatureConfig) -> list[tuple[str, int]]:
    """(name, first valid bar index) for every feature, in output column order."""
    out = [item for fam in family_layout(config).values() for item in fam]
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"FeatureConfig gives duplicate feature names {dup}; change a window")
    return out


def family_rows(config: FeatureConfig) -> dict[str, slice]:
    """The output rows (feature indices) each family writes."""
    rows, start = {}, 0
    for fam, items in family_layout(config).items():
        rows[fam] = slice(start, start + len(items))
        start += len(items)
    return rows


def feature_names(config: FeatureConfig | None = None) -> list[str]:
    """Output column names (besides `timestamp` and `warmup`) for `config`."""
    return [name for name, _ in feature_layout(config or FeatureConfig())]


def warmup_bars(config: FeatureConfig | None = None) -> int:
    """Rows [0, warmup_bars) are marked `warmup`: some feature is still NaN there."""
    return max(start for _, start in feature_layout(config or FeatureConfig()))


FEATURE_NAMES: tuple[str, ...] = tuple(feature_names())


def _family(name: str) -> str:
    for key in sorted(FEATURE_DOCS, key=len, reverse=True):
        if name == key or (name.startswith(key + "_") and name[len(key) + 1 :].isdigit()):
            return key
    raise AssertionError(f"feature {name} has no FEATURE_DOCS entry")


def feature_spec(config: FeatureConfig | None = None) -> dict[str, Any]:
    """What a model was trained on: version, names (column order), parameters, warm-up."""
    config = config or FeatureConfig()
    layout = feature_layout(config)
    return {
        "version": FEATURE_SET_VERSION,
        "names": [n for n, _ in layout],
        "params": dataclasses.asdict(config),
        "first_valid": dict(layout),
        "warmup_bars": max(s for _, s in layout),
        "docs": {n: FEATURE_DOCS[_family(n)] for n, _ in layout},
    }


def feature_spec_hash(config: FeatureConfig | None = None) -> str:
    """sha256 of the spec's canonical JSON (sorted keys, no whitespace); docs excluded."""
    spec = feature_spec(config)
    del spec["docs"]  # rewording a description must not invalidate trained models
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()
