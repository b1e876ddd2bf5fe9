"""GPU backend (`compute_features(..., backend="gpu")`): same features, CuPy + numba-cuda.

UNTESTED HERE: written without a GPU; `tests/unit/features/test_gpu_parity.py` (marked `gpu`)
compares it with the CPU backend (<= 1e-6) where a CUDA device exists.

- Window features (sums, extremes, CCI, skew/kurtosis, lags) and all elementwise arithmetic
  run as CuPy array expressions over sliding windows.
- The recursive indicators (EMA/Wilder/MACD/RSI, TA-Lib's rolling variance, MFI, OBV) are
  inherently sequential along time: they run the CPU kernels' own source (`kernels.py`,
  whose helpers are `register_jitable`) compiled by numba-cuda as one-thread kernels. One
  series per call keeps the interface of the CPU path; a universe gets its parallelism from
  one Dask-CUDA worker per GPU (`scale.run_partitions(..., gpu=True)`).

Input may be a pandas or cuDF DataFrame; validation runs on the host, output is pandas.
This module is imported only when backend="gpu".
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any

import numpy as np
import pandas as pd
from numba import cuda

from deeptrade.features import kernels
from deeptrade.features.config import FeatureConfig
from deeptrade.features.core import BenchmarkLike, assemble_frame, to_block
from deeptrade.features.pipeline import GK_C, Plan, time_features

THREADS = 1


@functools.cache
def _cuda_kernels() -> dict[str, Any]:
    """The recursive kernels compiled for CUDA from the CPU kernels' Python source."""
    # The kernels call CPU-compiled helpers: recompile those as device functions (callees
    # first) and resolve the kernels' global names in a namespace that holds them.
    namespace = dict(vars(kernels))
    for name in ("_is_flat", "_shifted_sums", "_rolling_var"):
        namespace[name] = cuda.jit(device=True)(_rebind(getattr(kernels, name).py_func, namespace))

    def device(fn: Any) -> Any:
        return cuda.jit(device=True)(_rebind(fn.py_func, namespace))

    trend = device(kernels.run_trend)
    wilder = device(kernels.run_wilder)
    flow = device(kernels.run_flow)
    rolling_std = device(kernels.run_rolling_std)

    @cuda.jit
    def trend_k(cl, ints, sc, ma, p, ret_h, rv_w, ma_w, mom_w, fp, k_ema, out):
        if cuda.grid(1) == 0:
            trend(cl, 0, 0, (ints, sc, ma), (p, ret_h, rv_w, ma_w, mom_w, fp, k_ema), out)

    @cuda.jit
    def wilder_k(hi, lo, cl, fastk, slowk, sc, p, out):
        if cuda.grid(1) == 0:
            wilder(hi, lo, cl, fastk, slowk, 0, 0, (sc,), (p,), out)

    @cuda.jit
    def flow_k(tp, vol, cl, pos, neg, obv, ints, sc, p, out):
        if cuda.grid(1) == 0:
            flow(tp, vol, cl, pos, neg, obv, 0, 0, (ints, sc), (p,), out)

    @cuda.jit
    def std_k(x, first, w, state, std, z):
        if cuda.grid(1) == 0:
            rolling_std(x, 0, 0, first, w, state, std, z)

    return {"trend": trend_k, "wilder": wilder_k, "flow": flow_k, "std": std_k}


def _rebind(fn: Any, namespace: dict[str, Any]) -> Any:
    """`fn` with its global names resolved in `namespace` instead of its module."""
    return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


def _windows(cp: Any, x: Any, w: int) -> Any:
    """(n - w + 1, w) view of the windows ending at bars w-1 .. n-1 (oldest first)."""
    if x.shape[0] < w:
        return cp.empty((0, w))
    return cp.lib.stride_tricks.sliding_window_view(x, w)


def _pad(cp: Any, values: Any, n: int) -> Any:
    """Right-align per-window values into a length-n array, NaN before the first window."""
    out = cp.full(n, cp.nan)
    if values.shape[0] > 0:
        out[n - values.shape[0] :] = values
    return out


def _lag(cp: Any, x: Any, k: int) -> Any:
    out = cp.full(x.shape[0], cp.nan)
    out[k:] = x[: x.shape[0] - k]
    return out


def compute_features_gpu(
    bars: Any, *, benchmark_close: BenchmarkLike = None, config: FeatureConfig | None = None
) -> pd.DataFrame:
    """GPU twin of `deeptrade.features.compute_features` (same columns and semantics)."""
    import cupy as cp

    config = config or FeatureConfig()
    if not isinstance(bars, pd.DataFrame):  # cuDF
        bars = bars.to_pandas()
    if benchmark_close is not None and not isinstance(benchmark_close, pd.Series | np.ndarray):
        benchmark_close = benchmark_close.to_pandas()
    block = to_block(bars, benchmark_close)
    plan = Plan.of(config)
    n = block.close.shape[0]
    out = cp.empty((plan.n_features, n))
    if n:
        _advance_gpu(cp, block, plan, out)
    host = cp.asnumpy(out)
    time_features(block.ts_ns, config.session_tz, host[plan.rows["time"]])
    return assemble_frame(bars, host, config)


def _advance_gpu(cp: Any, block: Any, plan: Plan, out: Any) -> None:
    cfg, rows, n = plan.config, plan.rows, block.close.shape[0]
    k = _cuda_kernels()
    c, h, lo, o, v = (
        cp.asarray(a) for a in (block.close, block.high, block.low, block.open, block.volume)
    )
    bench = cp.asarray(block.bench)
    bar_price = cp.asarray(block.bar_price)
    params = tuple(cp.asarray(a) for a in plan.params)
    states = {name: tuple(cp.asarray(a) for a in st) for name, st in plan.fresh_state().items()
              if name in ("trend", "wilder", "flow")}  # fmt: skip
    var_state = cp.asarray(plan.fresh_state()["var"])

    prev_c = _lag(cp, c, 1)
    r = cp.log(c / prev_c)
    lhl = cp.log(h / lo)
    lco = cp.log(c / o)
    park = lhl * lhl
    gk = 0.5 * (lhl * lhl) - GK_C * (lco * lco)
    tp = (h + lo + c) / 3
    pv = cp.where(cp.isnan(bar_price), tp, bar_price) * v

    # returns family
    ret = out[rows["returns"]]
    row = 0
    for lag in cfg.return_horizons:
        ret[row] = r if lag == 1 else cp.log(c / _lag(cp, c, lag))
        row += 1
    scratch = cp.empty(n)
    for j, w in enumerate(cfg.rvol_windows):
        k["std"][1, THREADS](r, 1, w, var_state[j], ret[row], scratch)
        row += 1
    w = cfg.range_vol_window
    ret[row] = cp.sqrt(
        cp.maximum(_pad(cp, _windows(cp, park, w).sum(1), n), 0.0) / (w * 4 * math.log(2.0))
    )
    ret[row + 1] = cp.sqrt(cp.maximum(_pad(cp, _windows(cp, gk, w).sum(1), n) / w, 0.0))
    ret[row + 2], ret[row + 3] = _skew_kurt(cp, r, cfg.moments_window, n)

    # close family
    cl_out = out[rows["close"]]
    ints, sc, ma = states["trend"]
    k["trend"][1, THREADS](c, ints, sc, ma, *params, cl_out)

    # range family
    rg = out[rows["range"]]
    fastk = _stoch_like(cp, h, lo, c, cfg.stoch_fastk, n, willr=False)
    slowk = cp.empty(n)
    (wsc,) = states["wilder"]
    k["wilder"][1, THREADS](h, lo, c, fastk, slowk, wsc, params[0], rg)
    rg[6] = _stoch_like(cp, h, lo, c, cfg.willr_period, n, willr=True)

    # volume family
    vo = out[rows["volume"]]
    vo[0] = _cci(cp, tp, cfg.cci_period, n)
    pos, neg, obv = cp.empty(n), cp.empty(n), cp.empty(n)
    fints, fsc = states["flow"]
    k["flow"][1, THREADS](tp, v, c, pos, neg, obv, fints, fsc, params[0], vo[1:2])
    kz = len(cfg.rvol_windows)
    k["std"][1, THREADS](obv, 0, cfg.obv_z_window, var_state[kz], scratch, vo[2])
    k["std"][1, THREADS](v, 0, cfg.volume_z_window, var_state[kz + 1], scratch, vo[3])
    w = cfg.vwap_window
    spv = _pad(cp, _windows(cp, pv, w).sum(1), n)
    sv = _pad(cp, _windows(cp, v, w).sum(1), n)
    vo[4] = cp.where(sv > 0.0, c / (spv / sv) - 1.0, sv)

    bar = out[rows["bar"]]
    bar[0] = (h - lo) / c
    bar[1] = o / prev_c - 1.0
    bar[2] = r - cp.log(bench / _lag(cp, bench, 1))


def _stoch_like(cp: Any, h: Any, lo: Any, c: Any, w: int, n: int, *, willr: bool) -> Any:
    hh = _pad(cp, _windows(cp, h, w).max(1), n)
    ll = _pad(cp, _windows(cp, lo, w).min(1), n)
    rng = hh - ll
    flat = cp.abs(rng) <= 1e-14 * (cp.abs(hh) + cp.abs(ll))
    value = cp.clip(((hh - c) / rng) * -100.0, -100.0, 0.0) if willr else ((c - ll) / rng) * 100.0
    return cp.where(flat, 0.0, value)


def _cci(cp: Any, tp: Any, w: int, n: int) -> Any:
    win = _windows(cp, tp, w)
    avg = win.sum(1) / w
    mad = cp.abs(win - avg[:, None]).sum(1) / w
    dev = tp[w - 1 :] - avg
    scale = 1e-14 * cp.abs(avg)
    value = cp.where((cp.abs(dev) > scale) & (cp.abs(mad) > scale), dev / (0.015 * mad), 0.0)
    return _pad(cp, value, n)


def _skew_kurt(cp: Any, r: Any, w: int, n: int) -> tuple[Any, Any]:
    win = _windows(cp, r, w)
    mu = win.sum(1) / w
    d = win - mu[:, None]
    m2, m3, m4 = (d**2).sum(1), (d**3).sum(1), (d**4).sum(1)
    nn = float(w)
    v2 = m2 / nn
    skew = math.sqrt(nn * (nn - 1.0)) / (nn - 2.0) * (m3 / nn) / (v2 * cp.sqrt(v2))
    kurt = (nn + 1.0) * nn * (nn - 1.0) / ((nn - 2.0) * (nn - 3.0)) * m4 / (m2 * m2) - 3.0 * (
        nn - 1.0
    ) ** 2 / ((nn - 2.0) * (nn - 3.0))
    flat = m2 <= 1e-28 * mu * mu * nn
    return _pad(cp, cp.where(flat, 0.0, skew), n), _pad(cp, cp.where(flat, 0.0, kurt), n)
