"""Strategies: bars (and model predictions) -> target positions in [-1, 1].

The same code serves the backtest and the live job:

- ``Strategy.signals(bars, **params)`` is vectorised: a target for every bar, each computed from
  bars <= t (causal, checked by perturbation tests).
- ``Strategy.latest(history, **params)`` is the live job's call: the target for the last bar of
  ``history`` -- literally ``signals(history)[-1]``, so live and backtest cannot drift apart.
  Pass enough history for the indicators to warm up (``Strategy.warmup(**params)`` bars).

For grid sweeps a strategy splits into ``features`` (indicator rows shared by all parameter
combinations, computed once per symbol) and a numba ``fill_targets`` that turns one combination's
row of ``params_matrix`` into targets; ``signals`` goes through the same two steps.

Targets are signal-like: +1 long, -1 short, 0 flat; the engine's ``direction`` turns shorts into
flat for long-only runs and sizing turns them into shares.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numba import njit

from deeptrade.backtest import indicators

Arrays = Mapping[str, np.ndarray]

K_MA_CROSS, K_RSI, K_DONCHIAN, K_MOMENTUM, K_PRED = range(5)


@njit(error_model="numpy", cache=True)
def fill_targets(kind: int, feats: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
    """Targets of one parameter combination ``p`` from the feature rows ``feats`` (k, n)."""
    n = out.shape[0]
    pos = 0.0
    if kind == K_MA_CROSS:
        fr, sr, vr, vmr, mult = int(p[0]), int(p[1]), int(p[2]), int(p[3]), p[4]
        for t in range(n):
            f = feats[fr, t]
            s = feats[sr, t]
            d = 0.0
            if f == f and s == s:
                d = 1.0 if f > s else (-1.0 if f < s else 0.0)
            if vr >= 0 and d != 0.0 and d != pos:
                v = feats[vr, t]
                vm = feats[vmr, t]
                if not (v == v and vm == vm and v > mult * vm):
                    d = 0.0  # a new position needs volume above mult x its average
            pos = d
            out[t] = d
    elif kind == K_RSI:
        row, lower, upper, exit_level = int(p[0]), p[1], p[2], p[3]
        for t in range(n):
            r = feats[row, t]
            if r != r:
                pos = 0.0
            else:
                if (pos > 0 and r >= exit_level) or (pos < 0 and r <= exit_level):
                    pos = 0.0
                if pos == 0.0:
                    if r < lower:
                        pos = 1.0
                    elif r > upper:
                        pos = -1.0
            out[t] = pos
    elif kind == K_DONCHIAN:
        ue, le, ux, lx = int(p[0]), int(p[1]), int(p[2]), int(p[3])
        for t in range(n):
            c = feats[0, t]
            if feats[ue, t] != feats[ue, t]:
                pos = 0.0
            else:
                if (pos > 0 and c < feats[lx, t]) or (pos < 0 and c > feats[ux, t]):
                    pos = 0.0
                if c > feats[ue, t]:
                    pos = 1.0
                elif c < feats[le, t]:
                    pos = -1.0
            out[t] = pos
    elif kind == K_MOMENTUM:
        lb, thr = int(p[0]), p[1]
        for t in range(n):
            d = 0.0
            if t >= lb:
                ret = feats[0, t] / feats[0, t - lb] - 1.0
                d = 1.0 if ret > thr else (-1.0 if ret < -thr else 0.0)
            out[t] = d
    elif kind == K_PRED:
        row, thr, center = int(p[0]), p[1], p[2]
        for t in range(n):
            x = feats[row, t] - center
            out[t] = 1.0 if x > thr else (-1.0 if x < -thr else 0.0)


def as_arrays(bars: pd.DataFrame | Arrays) -> dict[str, np.ndarray]:
    """1-D float64 arrays by column name from a bar DataFrame or a mapping of arrays."""
    cols = bars.columns if isinstance(bars, pd.DataFrame) else bars.keys()
    out = {}
    for k in cols:
        if k == "timestamp":
            continue
        out[k] = np.ascontiguousarray(np.asarray(bars[k], dtype=np.float64))
    return out


class _Features:
    """Unique indicator rows, keyed so that every combination can point at its rows."""

    def __init__(self, arrays: Arrays) -> None:
        self.arrays = arrays
        self.blocks: list[np.ndarray] = [arrays["close"][None, :]]
        self.keys: dict[tuple, int] = {("close",): 0}
        self.n_rows = 1

    def add(self, keys: list[tuple], block: np.ndarray) -> None:
        """Append rows ``block`` (len(keys), n) under ``keys``."""
        for i, key in enumerate(keys):
            self.keys[key] = self.n_rows + i
        self.blocks.append(np.asarray(block, dtype=np.float64).reshape(len(keys), -1))
        self.n_rows += len(keys)

    def row(self, key: tuple, compute) -> int:
        if key not in self.keys:
            self.add([key], compute())
        return self.keys[key]

    def matrix(self) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(self.blocks))


class Strategy:
    """Base class: subclasses set ``name``, ``kind``, ``params`` (name -> default), ``inputs``,
    ``rule`` (the validity rule in words) and implement ``_invalid`` and ``_matrix``."""

    name: ClassVar[str]
    kind: ClassVar[int]
    params: ClassVar[dict[str, Any]]
    inputs: ClassVar[tuple[str, ...]] = ("close",)
    rule: ClassVar[str] = ""

    @classmethod
    def resolve(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in; unknown names raise a ValueError listing the valid ones."""
        unknown = [k for k in params if k not in cls.params]
        if unknown:
            valid = ", ".join(f"{k}={v!r}" for k, v in cls.params.items())
            hint = difflib.get_close_matches(unknown[0], list(cls.params), n=1)
            extra = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(
                f"strategy {cls.name!r}: unknown parameter(s) {unknown}.{extra} Valid: {valid}"
            )
        return {**cls.params, **params}

    @classmethod
    def full_grid(cls, grid: pd.DataFrame) -> dict[str, np.ndarray]:
        """The grid as one array per parameter (defaults filled in); unknown columns refused."""
        cls.resolve(dict.fromkeys(grid.columns))
        n = len(grid)
        cols = {}
        for k, v in cls.params.items():
            if k in grid.columns:
                cols[k] = grid[k].to_numpy()
            else:
                cols[k] = np.full(n, v, dtype=object if isinstance(v, str) else None)
        return cols

    @classmethod
    def _invalid(cls, g: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.zeros(_rows_in(g), dtype=bool)

    @classmethod
    def valid(cls, grid: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the grid rows that satisfy the strategy's rule."""
        return ~cls._invalid(cls.full_grid(grid))

    @classmethod
    def warmup(cls, **params: Any) -> int:
        """Bars of history the indicators need before the first non-flat target."""
        return 0

    @classmethod
    def _matrix(cls, feats: _Features, g: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def features(
        cls, bars: pd.DataFrame | Arrays, grid: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows (k, n) and the (n_combos, p) matrix ``fill_targets`` reads per combo."""
        arrays = as_arrays(bars)
        missing = [k for k in cls.inputs if k not in arrays]
        if missing:
            raise ValueError(f"strategy {cls.name!r} needs input column(s) {missing}")
        g = cls.full_grid(grid)
        bad = np.flatnonzero(cls._invalid(g))
        if bad.size:
            row = {k: v[bad[0]] for k, v in g.items()}
            raise ValueError(
                f"strategy {cls.name!r}: grid row {grid.index[bad[0]]} {row} breaks the rule "
                f"{cls.rule}; drop it (param_grid does) or fix the values"
            )
        feats = _Features(arrays)
        pm = np.ascontiguousarray(cls._matrix(feats, g), dtype=np.float64)
        return feats.matrix(), pm

    @classmethod
    def signals(cls, bars: pd.DataFrame | Arrays, **params: Any) -> np.ndarray:
        """Target position for every bar, each from bars <= t."""
        feats, pm = cls.features(bars, pd.DataFrame([cls.resolve(params)]))
        out = np.empty(feats.shape[1])
        fill_targets(cls.kind, feats, pm[0], out)
        return out

    @classmethod
    def latest(cls, history: pd.DataFrame | Arrays, **params: Any) -> float:
        """Target for the last bar of ``history`` (the live job's call)."""
        return float(cls.signals(history, **params)[-1])


def _rows_in(g: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(g.values())))


def _rows_for(feats: _Features, prefix: tuple, values: np.ndarray, compute) -> np.ndarray:
    """Feature-row index for each value (a window), computing each distinct one once.

    ``compute(windows)`` returns one row per window of the int64 array ``windows``.
    """
    uniq, inverse = np.unique(np.asarray(values).astype(np.int64), return_inverse=True)
    missing = np.array([w for w in uniq if (*prefix, int(w)) not in feats.keys], dtype=np.int64)
    if missing.size:
        feats.add([(*prefix, int(w)) for w in missing], np.asarray(compute(missing)))
    rows = np.array([feats.keys[(*prefix, int(w))] for w in uniq], dtype=np.float64)
    return rows[inverse.reshape(-1)]


def _each(fn, *arrays: np.ndarray):
    """``compute`` for ``_rows_for`` from a one-window indicator ``fn(*arrays, window)``."""
    return lambda windows: [fn(*arrays, int(w)) for w in windows]


class MACross(Strategy):
    """Long while the fast MA is above the slow one, short while below.

    ``ma``: 'sma' | 'ema' | 'wma'. ``volume_window`` > 0 adds a filter: a new position opens
    only on a bar whose volume exceeds ``volume_mult`` x its ``volume_window``-bar SMA (until
    then the target is flat).
    """

    name = "ma_cross"
    kind = K_MA_CROSS
    params: ClassVar[dict[str, Any]] = {
        "fast": 10,
        "slow": 30,
        "ma": "sma",
        "volume_window": 0,
        "volume_mult": 1.0,
    }
    rule = "1 <= fast < slow, ma in ('sma', 'ema', 'wma'), volume_window >= 0"

    @classmethod
    def _invalid(cls, g: Mapping[str, np.ndarray]) -> np.ndarray:
        fast, slow = np.asarray(g["fast"]), np.asarray(g["slow"])
        kinds = np.isin(np.asarray(g["ma"], dtype=object), list(indicators.MA_KINDS))
        ok = (fast >= 1) & (fast < slow) & kinds
        return ~(ok & (np.asarray(g["volume_window"]) >= 0))

    @classmethod
    def warmup(cls, **params: Any) -> int:
        p = cls.resolve(params)
        return max(int(p["slow"]), int(p["volume_window"]))

    @classmethod
    def _matrix(cls, feats: _Features, g: Mapping[str, np.ndarray]) -> np.ndarray:
        close = feats.arrays["close"]
        fr = np.empty(_rows_in(g))
        sr = np.empty(_rows_in(g))
        ma = np.asarray(g["ma"], dtype=object)
        for name, kind in indicators.MA_KINDS.items():
            on = ma == name
            if on.any():

                def compute(windows: np.ndarray, kind: int = kind) -> np.ndarray:
                    return indicators.moving_averages(close, windows, kind)

                fr[on] = _rows_for(feats, ("ma", kind), np.asarray(g["fast"])[on], compute)
                sr[on] = _rows_for(feats, ("ma", kind), np.asarray(g["slow"])[on], compute)
        vw = np.asarray(g["volume_window"]).astype(np.int64)
        vr = np.full(_rows_in(g), -1.0)
        vmr = np.full(_rows_in(g), -1.0)
        if (vw > 0).any():
            if "volume" not in feats.arrays:
                raise ValueError("ma_cross with volume_window > 0 needs a 'volume' column")
            vol = feats.arrays["volume"]
            on = vw > 0
            vr[on] = feats.row(("volume",), lambda: vol)
            vmr[on] = _rows_for(feats, ("vma",), vw[on], _each(indicators.sma, vol))
        mult = np.asarray(g["volume_mult"], dtype=np.float64)
        return np.column_stack([fr, sr, vr, vmr, mult])


class RSIReversion(Strategy):
    """Mean reversion on Wilder's RSI: long below ``lower``, short above ``upper``, flat again
    once RSI crosses ``exit`` (held in between)."""

    name = "rsi"
    kind = K_RSI
    params: ClassVar[dict[str, Any]] = {"window": 14, "lower": 30.0, "upper": 70.0, "exit": 50.0}
    rule = "window >= 2 and 0 <= lower <= exit <= upper <= 100"

    @classmethod
    def _invalid(cls, g: Mapping[str, np.ndarray]) -> np.ndarray:
        lo, ex, up = (np.asarray(g[k], dtype=np.float64) for k in ("lower", "exit", "upper"))
        ok = (np.asarray(g["window"]) >= 2) & (lo >= 0) & (lo <= ex) & (ex <= up) & (up <= 100)
        return ~ok

    @classmethod
    def warmup(cls, **params: Any) -> int:
        return int(cls.resolve(params)["window"]) + 1

    @classmethod
    def _matrix(cls, feats: _Features, g: Mapping[str, np.ndarray]) -> np.ndarray:
        close = feats.arrays["close"]
        rows = _rows_for(feats, ("rsi",), np.asarray(g["window"]), _each(indicators.rsi, close))
        return np.column_stack([rows, g["lower"], g["upper"], g["exit"]])


class Donchian(Strategy):
    """Breakout: long when the close exceeds the prior ``window``-bar high, short below the prior
    low; a long exits below the prior ``exit_window``-bar low (a short above that high)."""

    name = "donchian"
    kind = K_DONCHIAN
    params: ClassVar[dict[str, Any]] = {"window": 20, "exit_window": 10}
    inputs = ("close", "high", "low")
    rule = "window >= 1 and exit_window >= 1"

    @classmethod
    def _invalid(cls, g: Mapping[str, np.ndarray]) -> np.ndarray:
        return ~((np.asarray(g["window"]) >= 1) & (np.asarray(g["exit_window"]) >= 1))

    @classmethod
    def warmup(cls, **params: Any) -> int:
        p = cls.resolve(params)
        return max(int(p["window"]), int(p["exit_window"])) + 1

    @classmethod
    def _matrix(cls, feats: _Features, g: Mapping[str, np.ndarray]) -> np.ndarray:
        hi, lo = feats.arrays["high"], feats.arrays["low"]
        cols = []
        for name in ("window", "exit_window"):
            ws = np.asarray(g[name])
            cols.append(_rows_for(feats, ("hh",), ws, _each(indicators.prior_max, hi)))
            cols.append(_rows_for(feats, ("ll",), ws, _each(indicators.prior_min, lo)))
        return np.column_stack(cols)


class Momentum(Strategy):
    """Time-series momentum: the sign of the ``lookback``-bar return beyond +-``threshold``."""

    name = "momentum"
    kind = K_MOMENTUM
    params: ClassVar[dict[str, Any]] = {"lookback": 20, "threshold": 0.0}
    rule = "lookback >= 1 and threshold >= 0"

    @classmethod
    def _invalid(cls, g: Mapping[str, np.ndarray]) -> np.ndarray:
        return ~(
            (np.asarray(g["lookback"]) >= 1) & (np.asarray(g["threshold"], dtype=np.float64) >= 0)
        )

    @classmethod
    def warmup(cls, **params: Any) -> int:
        return int(cls.resolve(params)["lookback"])

    @classmethod
    def _matrix(cls, feats: _Features, g: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([g["lookback"], g["threshold"]])


class Predictions(Strategy):
    """Model-driven, one symbol: long when ``pred - center > threshold``, short below
    ``-threshold`` (NaN = flat). Needs a ``pred`` column aligned with the bars, where
    ``pred[t]`` used only data <= t. For cross-sectional ranks use ``positions_from_predictions``.
    """

    name = "predictions"
    kind = K_PRED
    params: ClassVar[dict[str, Any]] = {"threshold": 0.0, "center": 0.0}
    inputs = ("close", "pred")
    rule = "threshold >= 0"

    @classmethod
    def _invalid(cls, g: Mapping[str, np.ndarray]) -> np.ndarray:
        return ~(np.asarray(g["threshold"], dtype=np.float64) >= 0)

    @classmethod
    def _matrix(cls, feats: _Features, g: Mapping[str, np.ndarray]) -> np.ndarray:
        pred = feats.arrays["pred"]
        row = feats.row(("pred",), lambda: pred)
        return np.column_stack([np.full(_rows_in(g), row), g["threshold"], g["center"]])


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (MACross, RSIReversion, Donchian, Momentum, Predictions)
}


def get_strategy(name: str) -> type[Strategy]:
    """Registry lookup; an unknown name raises ValueError with the valid names."""
    try:
        return STRATEGIES[name]
    except KeyError:
        hint = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown strategy {name!r}.{extra} Known: {sorted(STRATEGIES)}") from None


def positions_from_predictions(
    preds: np.ndarray | pd.DataFrame,
    mode: str = "threshold",
    *,
    threshold: float = 0.0,
    center: float = 0.0,
    top_k: int = 1,
    long_only: bool = False,
) -> np.ndarray:
    """Target positions (n, m) from predictions ``preds[t, symbol]`` (row t uses only row t).

    ``mode="threshold"``: +1 where ``pred - center > threshold``, -1 below ``-threshold``.
    ``mode="rank"``: each bar, the ``top_k`` highest predictions get +1/top_k and (unless
    ``long_only``) the ``top_k`` lowest -1/top_k; NaN predictions are skipped, ties go to
    the earlier column, and with fewer than 2 x top_k valid values both sides shrink equally.
    """
    x = np.asarray(preds, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = np.zeros_like(x)
    if mode == "threshold":
        if threshold < 0:
            raise ValueError(f"positions_from_predictions: threshold must be >= 0, got {threshold}")
        d = x - center
        out[d > threshold] = 1.0
        out[d < -threshold] = -1.0
        return out if not long_only else np.maximum(out, 0.0)
    if mode != "rank":
        raise ValueError(f"positions_from_predictions: mode={mode!r}; use 'threshold' or 'rank'")
    if top_k < 1:
        raise ValueError(f"positions_from_predictions: top_k must be >= 1, got {top_k}")
    for t in range(x.shape[0]):
        row = x[t]
        valid = np.flatnonzero(~np.isnan(row))
        k = min(top_k, valid.size) if long_only else min(top_k, valid.size // 2)
        if k == 0:
            continue
        order = valid[np.argsort(-row[valid], kind="stable")]
        out[t, order[:k]] = 1.0 / top_k
        if not long_only:
            worst = valid[np.argsort(row[valid], kind="stable")]
            out[t, worst[:k]] = -1.0 / top_k
    return out
