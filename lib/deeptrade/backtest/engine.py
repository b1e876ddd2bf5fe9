"""Event-driven backtest engine: numba kernels over target positions.

A run is one portfolio of ``m`` aligned symbols driven by a target-position array
``targets[t, j]`` in [-1, 1] that a strategy computed from bars <= t. The kernel walks the bars
once; inside bar ``t`` it

1. fills the orders decided at ``t-1`` at ``open[t]`` (``fill="next_open"``),
2. checks stop-loss / take-profit against ``high[t]`` / ``low[t]``,
3. marks the portfolio at ``close[t]`` (``equity[t]``),
4. decides: reads ``targets[t]``, ``vol[t]``, ``atr[t]`` and ``close[t]`` -- never an index
   above ``t`` -- and either queues the order for ``open[t+1]`` or, with ``fill="close"``,
   fills it at ``close[t]`` at once.

An order is sent only when a symbol's target changes (signal semantics, as in backtesting.py
and vectorbt's ``from_signals``); held positions are not rebalanced while the target is
unchanged. The target weight becomes shares at fill time: ``|w| * equity`` is the order's whole
cash outlay including fees, so an all-in long (``w = 1``) never leaves negative cash.

Two kernels apply these rules: ``simulate_portfolio`` (m symbols sharing cash) and
``simulate_single`` (one symbol, the book in local values, bars without events marked in a
tight loop; what sweeps run). Tests hold them bit-for-bit equal for m = 1. Both fold every bar
into the metrics as they go (``metrics.fold_bar``), so a sweep never stores an equity curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from deeptrade.backtest import indicators
from deeptrade.backtest.metrics import (
    METRICS,
    S_EXPOSURE_BARS,
    S_GROSS_LOSS,
    S_GROSS_PROFIT,
    S_LEN,
    S_NFILLS,
    S_NOTIONAL,
    S_NTRADES,
    S_NWINS,
    S_SUM_PNL,
    S_SUM_TRADE_RET,
    Fold,
    finish_metrics,
    fold_bar,
    fold_flat,
    fold_start,
)
from deeptrade.config.backtest import DIRECTIONS, SIZINGS, BacktestConfig

# ---------------------------------------------------------------------------------------------
# Configuration


# Layout of the float vector the kernels read the configuration from.
(C_CASH, C_FILL_CLOSE, C_DIRECTION, C_COMM, C_FPS, C_MINFEE, C_SLIP, C_SLIP_ATR, C_SIZING,
 C_FRACTION, C_VOLTGT, C_MAXLEV, C_SL, C_TP, C_LOT, C_CLOSE_END, C_PPY, C_LEN) = range(18)  # fmt: skip


def config_vector(cfg: BacktestConfig) -> np.ndarray:
    """The configuration as the float64 vector the numba kernels take."""
    v = np.zeros(C_LEN)
    v[C_CASH] = cfg.initial_cash
    v[C_FILL_CLOSE] = cfg.fill == "close"
    v[C_DIRECTION] = DIRECTIONS.index(cfg.direction)
    v[C_COMM] = cfg.commission_bps * 1e-4
    v[C_FPS] = cfg.fee_per_share
    v[C_MINFEE] = cfg.min_fee
    v[C_SLIP] = cfg.slippage_bps * 1e-4
    v[C_SLIP_ATR] = cfg.slippage_atr
    v[C_SIZING] = SIZINGS.index(cfg.sizing)
    v[C_FRACTION] = cfg.fraction
    v[C_VOLTGT] = cfg.vol_target
    v[C_MAXLEV] = cfg.max_leverage
    v[C_SL] = cfg.stop_loss or 0.0
    v[C_TP] = cfg.take_profit or 0.0
    v[C_LOT] = cfg.lot_size
    v[C_CLOSE_END] = cfg.close_at_end
    v[C_PPY] = cfg.periods_per_year
    return v


# Columns of the fill and trade records.
FILL_COLUMNS = ("bar", "symbol", "qty", "price", "fee", "reason")
TRADE_COLUMNS = (
    "symbol",
    "direction",
    "entry_bar",
    "exit_bar",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "fees",
    "return",
    "is_open",
)
REASONS = ("signal", "stop_loss", "take_profit", "end")
R_SIGNAL, R_STOP, R_TAKE, R_END = range(4)


# ---------------------------------------------------------------------------------------------
# Kernel


@njit(error_model="numpy", cache=True)
def _fee(qty: float, price: float, cfg: np.ndarray) -> float:
    a = abs(qty)
    fee = a * price * cfg[C_COMM]
    if cfg[C_FPS] > 0.0 or cfg[C_MINFEE] > 0.0:
        fee += max(a * cfg[C_FPS], cfg[C_MINFEE])
    return fee


@njit(error_model="numpy", cache=True)
def _slipped(price: float, side: float, atr_value: float, cfg: np.ndarray) -> float:
    """Fill price after slippage for a buy (side > 0) or a sell (side < 0)."""
    adj = price * cfg[C_SLIP]
    if cfg[C_SLIP_ATR] > 0.0 and atr_value == atr_value:
        adj += cfg[C_SLIP_ATR] * atr_value
    return price + adj if side > 0 else price - adj


@njit(error_model="numpy", cache=True)
def _signal(x: float, v: float, direction: int, vol_sizing: bool) -> float:
    """Effective target of one symbol: NaN is flat, the direction rule applies, and under
    volatility targeting no volatility estimate yet means flat."""
    if x != x:
        return 0.0
    if (direction == 1 and x < 0.0) or (direction == 2 and x > 0.0):
        return 0.0
    if vol_sizing and x != 0.0 and not (v == v and v > 0.0):
        return 0.0
    return x


@njit(error_model="numpy", cache=True)
def _stop_check(qj, o, h, lo, stop, take):
    """(reason, price) of a stop-loss / take-profit exit inside a bar, reason -1 if none.

    A gap through the level fills at the open; when both levels lie inside the bar's range
    the stop-loss is assumed to come first (the pessimistic choice).
    """
    if qj > 0.0:
        if lo <= stop:
            return R_STOP, min(o, stop)
        if h >= take:
            return R_TAKE, max(o, take)
    elif qj < 0.0:
        if h >= stop:
            return R_STOP, max(o, stop)
        if lo <= take:
            return R_TAKE, min(o, take)
    return -1, 0.0


class Trade(NamedTuple):
    """Bookkeeping of one open trade, passed by value through the kernels (no refcounting)."""

    entry_bar: float
    direction: float
    max_size: float
    entry_cost: float  # sum of |qty| x price of the fills that grew the position
    entry_qty: float
    exit_value: float  # sum of |qty| x price of the fills that shrank it
    exit_qty: float
    fees: float
    gross_pnl: float  # realised, before fees


class Acc(NamedTuple):
    """Run statistics accumulated by the kernels (stored into ``stats`` at the end)."""

    n_trades: float
    n_wins: float
    gross_profit: float
    gross_loss: float
    sum_pnl: float
    sum_trade_ret: float
    notional: float
    n_fills: float


T_LEN = len(Trade._fields)
NO_TRADE = Trade(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
NO_ACC = Acc(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@njit(error_model="numpy", cache=True)
def _target_shares(w, equity, price, cfg):
    """Shares whose cost at ``price`` plus fees equals ``|w| * equity`` (toward zero in lots)."""
    budget = abs(w) * equity - cfg[C_MINFEE]
    if budget <= 0.0:
        return 0.0
    shares = budget / (price * (1.0 + cfg[C_COMM]) + cfg[C_FPS])
    if cfg[C_LOT] > 0.0:
        shares = math.floor(shares / cfg[C_LOT]) * cfg[C_LOT]
    return shares if w > 0 else -shares


@njit(error_model="numpy", cache=True, inline="always")
def _fill(tr, acc, t, qj, d, price, fee):
    """Book a fill of ``d`` shares at ``price`` into the open trade and the run statistics.

    Returns (trade, acc, closed, pnl): ``closed`` when the position went to zero, with the
    trade's pnl net of all its fees.
    """
    q_new = qj + d
    a = abs(d)
    if qj == 0.0:
        tr = Trade(float(t), 1.0 if d > 0 else -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    cost, qty, exit_value, exit_qty, gross = (
        tr.entry_cost,
        tr.entry_qty,
        tr.exit_value,
        tr.exit_qty,
        tr.gross_pnl,
    )
    if abs(q_new) > abs(qj):
        cost += a * price
        qty += a
    else:
        gross += tr.direction * (price - cost / qty) * a
        exit_value += a * price
        exit_qty += a
    tr = Trade(
        tr.entry_bar,
        tr.direction,
        max(tr.max_size, abs(q_new)),
        cost,
        qty,
        exit_value,
        exit_qty,
        tr.fees + fee,
        gross,
    )
    closed = q_new == 0.0
    pnl = tr.gross_pnl - tr.fees
    acc = Acc(
        acc.n_trades + closed,
        acc.n_wins + (closed and pnl > 0),
        acc.gross_profit + (pnl if closed and pnl > 0 else 0.0),
        acc.gross_loss - (pnl if closed and pnl <= 0 else 0.0),
        acc.sum_pnl + (pnl if closed else 0.0),
        acc.sum_trade_ret + (pnl / cost if closed else 0.0),
        acc.notional + a * price,
        acc.n_fills + 1.0,
    )
    return tr, acc, closed, pnl


@njit(error_model="numpy", cache=True, inline="always")
def _levels(tr, cfg):
    """(stop, take) prices of the open trade from its average entry; NaN when disabled."""
    avg = tr.entry_cost / tr.entry_qty
    sl = cfg[C_SL]
    tp = cfg[C_TP]
    stop = avg * (1.0 - tr.direction * sl) if sl > 0.0 else np.nan
    take = avg * (1.0 + tr.direction * tp) if tp > 0.0 else np.nan
    return stop, take


@njit(error_model="numpy", cache=True)
def _log_fill(fills, nf, t, j, d, price, fee, reason):
    if nf < fills.shape[0]:  # beyond capacity: counted, not written; the caller raises
        fills[nf, 0] = t
        fills[nf, 1] = j
        fills[nf, 2] = d
        fills[nf, 3] = price
        fills[nf, 4] = fee
        fills[nf, 5] = reason
    return nf + 1


@njit(error_model="numpy", cache=True)
def _log_trade(trades, nt, j, t, tr, exit_price, pnl, is_open):
    if nt < trades.shape[0]:
        trades[nt, 0] = j
        trades[nt, 1] = tr.direction
        trades[nt, 2] = tr.entry_bar
        trades[nt, 3] = t
        trades[nt, 4] = tr.max_size
        trades[nt, 5] = tr.entry_cost / tr.entry_qty
        trades[nt, 6] = exit_price
        trades[nt, 7] = pnl
        trades[nt, 8] = tr.fees
        trades[nt, 9] = pnl / tr.entry_cost
        trades[nt, 10] = is_open
    return nt + 1


@njit(error_model="numpy", cache=True)
def _log(fills, trades, nf, nt, t, j, d, price, fee, reason, tr, closed, pnl):
    """Record a fill (and the trade it closed); only called when recording."""
    nf = _log_fill(fills, nf, t, j, d, price, fee, reason)
    if closed:
        nt = _log_trade(trades, nt, j, t, tr, tr.exit_value / tr.exit_qty, pnl, 0.0)
    return nf, nt


@njit(error_model="numpy", cache=True)
def _log_open(trades, nt, j, t, tr, qj, last_close):
    """A trade still open at the end, marked at the last close (not in the statistics)."""
    gross = tr.gross_pnl + tr.direction * (last_close - tr.entry_cost / tr.entry_qty) * abs(qj)
    return _log_trade(trades, nt, j, t, tr, last_close, gross - tr.fees, 1.0)


@njit(error_model="numpy", cache=True, inline="always")
def _close_first(w, qj):
    """Whether moving from ``qj`` shares to weight ``w`` starts by closing the position."""
    return qj != 0.0 and (w == 0.0 or (w > 0) != (qj > 0))


@njit(error_model="numpy", cache=True, inline="always")
def _open_qty(w, qj, px, atr_value, equity, cfg):
    """(shares, price) of the order that takes ``qj`` to weight ``w`` of ``equity`` at ``px``.

    Only the opening or resizing part: a close or reversal was filled before (``_close_first``),
    so ``equity`` includes its proceeds and fees. Shares 0 means no order.
    """
    if w == 0.0:
        return 0.0, 0.0
    p = _slipped(px, w, atr_value, cfg)
    d = _target_shares(w, equity, p, cfg) - qj
    if d != 0.0 and (d > 0) != (w > 0):
        p = _slipped(px, d, atr_value, cfg)  # shrinking a position sells (or covers)
    return d, p


@njit(error_model="numpy", cache=True, inline="always")
def _store_stats(acc, exposed_bars, stats):
    stats[S_NTRADES] = acc.n_trades
    stats[S_NWINS] = acc.n_wins
    stats[S_GROSS_PROFIT] = acc.gross_profit
    stats[S_GROSS_LOSS] = acc.gross_loss
    stats[S_SUM_PNL] = acc.sum_pnl
    stats[S_SUM_TRADE_RET] = acc.sum_trade_ret
    stats[S_NOTIONAL] = acc.notional
    stats[S_NFILLS] = acc.n_fills
    stats[S_EXPOSURE_BARS] = exposed_bars


# Steps of the full bar step, in order. Each may produce one fill.
(P_OPEN_CLOSE, P_OPEN_FILL, P_STOP, P_BANKRUPT, P_DECIDE, P_CLOSE_CLOSE, P_CLOSE_FILL,
 P_END) = range(8)  # fmt: skip


@njit(error_model="numpy", cache=True)
def _next_change(target, vol, u, last, held, direction, vol_sizing):
    """First bar in [u, last) whose effective target differs from ``held`` (else ``last``).

    A raw target equal to the previous bar's has the same effective value (unless volatility
    sizing, where the estimate may come or go), so ``_signal`` runs only on raw changes.
    """
    raw = np.nan
    while u < last:
        x = target[u]
        if x != raw or vol_sizing:
            if _signal(x, vol[u], direction, vol_sizing) != held:
                break
            raw = x
        u += 1
    return u


@njit(error_model="numpy", cache=True)
def _mark_span(fold, cash, q, c, t, u, start, equity_out):
    """Mark bars [t, u) of a held position to market and fold them into the metrics.

    Stops early at a bar whose equity is <= 0 (the full bar step then liquidates); returns
    (fold, first unmarked bar). An empty ``equity_out`` (sweeps) skips storing the curve. The
    fold is unpacked into scalars: carried as one tuple through the big kernel, LLVM kept it
    in memory and this loop ran 3-5x slower.
    """
    n, prev, s1, s2, s3, s4, down2, peak, floor, max_dd, eq_sum = fold
    store = equity_out.shape[0] > 0
    for k in range(t, u):
        e = cash + q * c[k]
        if e <= 0.0:
            u = k
            break
        if store:
            equity_out[k - start] = e
        f = fold_bar(Fold(n, prev, s1, s2, s3, s4, down2, peak, floor, max_dd, eq_sum), e)
        n, prev, s1, s2, s3, s4, down2, peak, floor, max_dd, eq_sum = f
    return Fold(n, prev, s1, s2, s3, s4, down2, peak, floor, max_dd, eq_sum), u


@njit(error_model="numpy", cache=True)
def simulate_single(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    vol: np.ndarray,
    atr: np.ndarray,
    target: np.ndarray,
    start: int,
    end: int,
    cfg: np.ndarray,
    record: bool,
    equity_out: np.ndarray,
    pos_out: np.ndarray,
    fills: np.ndarray,
    trades: np.ndarray,
    stats: np.ndarray,
    metrics_out: np.ndarray,
):
    """One symbol over bars ``[start, end)`` of 1-D arrays; the sweep's kernel.

    Same rules as ``simulate_portfolio`` with m = 1 (tests hold them bit-for-bit equal), with
    the book in local values. Most bars have no event (no pending order, no stop hit,
    unchanged target) and are only marked to market in a tight loop; any other bar runs the
    full bar step, whose steps (``P_*``) each may produce one fill. Bar ``t`` reads inputs at
    index ``t`` only. Returns (n_fills, n_trades); writes ``metrics_out``, ``stats``,
    ``equity_out`` (unless it is empty, as in sweeps) and, when ``record``, ``pos_out``,
    ``fills`` and ``trades``.
    """
    tr = NO_TRADE
    acc = NO_ACC
    fold = fold_start(cfg[C_CASH])
    cash = cfg[C_CASH]
    q = 0.0
    held = 0.0  # effective target last acted on; an order goes out only when it changes
    pend = np.nan  # weight to fill at the next open (or this close); NaN: none
    pend_atr = np.nan
    stop = np.nan
    take = np.nan
    nf = 0
    nt = 0
    fill_close = cfg[C_FILL_CLOSE] > 0
    close_end = cfg[C_CLOSE_END] > 0
    direction = int(cfg[C_DIRECTION])
    vol_sizing = cfg[C_SIZING] == 1.0
    stops = cfg[C_SL] > 0.0 or cfg[C_TP] > 0.0
    bankrupt = False
    exposed_bars = 0
    t = start
    while t < end:
        if pend != pend and not bankrupt:
            # Quiet bars: find the next event, then mark the span and fold it into the metrics.
            # (An unsigned index skips numba's negative-index wraparound check in the flat fill.)
            u = t
            if stops and q != 0.0:
                while u < end - 1:
                    if _stop_check(q, o[u], h[u], lo[u], stop, take)[0] >= 0:
                        break
                    if _signal(target[u], vol[u], direction, vol_sizing) != held:
                        break
                    u += 1
            else:
                u = _next_change(target, vol, u, end - 1, held, direction, vol_sizing)
            if q == 0.0:
                # flat: equity is the cash, every return exactly 0
                if equity_out.shape[0] > 0:
                    for k in range(t, u):
                        equity_out[np.uint64(k - start)] = cash
                fold = fold_flat(fold, u - t)
            else:
                fold, u = _mark_span(fold, cash, q, c, t, u, start, equity_out)
                exposed_bars += u - t
            if record:
                for k in range(t, u):
                    pos_out[k - start] = q
            t = u

        last = t == end - 1
        for step in range(8):
            d = 0.0
            p = 0.0
            reason = R_SIGNAL
            if step == P_OPEN_CLOSE and pend == pend and not fill_close and _close_first(pend, q):
                # 1. the order decided at t-1 fills at this open: a close or reversal first,
                d = -q
                p = _slipped(o[t], d, pend_atr, cfg)
            elif step == P_OPEN_FILL and pend == pend and not fill_close:
                # then the part that opens or resizes, sized from the equity after it.
                d, p = _open_qty(pend, q, o[t], pend_atr, cash + q * o[t], cfg)
                pend = np.nan
            elif step == P_STOP and stops and q != 0.0:
                # 2. stop-loss / take-profit inside this bar
                reason, price = _stop_check(q, o[t], h[t], lo[t], stop, take)
                if reason >= 0:
                    d = -q
                    p = _slipped(price, d, atr[t - 1] if t > 0 else np.nan, cfg)
            elif step == P_BANKRUPT and not bankrupt and cash + q * c[t] <= 0.0:
                # 3. out of money at the close: liquidate and stop trading (a margin call)
                bankrupt = True
                d = -q
                p = c[t]
                reason = R_END
            elif step == P_DECIDE and not bankrupt and not (last and (close_end or not fill_close)):
                # 4. decide from data <= t (a decision on the last bar could not fill at a
                # next open); with fill="close" the next two steps fill it at this close.
                sig = _signal(target[t], vol[t], direction, vol_sizing)
                if sig != held:
                    held = sig
                    w = sig * cfg[C_FRACTION]
                    if vol_sizing and sig != 0.0:
                        w = sig * cfg[C_VOLTGT] / vol[t]
                    if abs(w) > cfg[C_MAXLEV]:
                        w *= cfg[C_MAXLEV] / abs(w)  # as the portfolio kernel scales, m = 1
                    pend = w
                    pend_atr = atr[t]
            elif step == P_CLOSE_CLOSE and pend == pend and fill_close and _close_first(pend, q):
                d = -q
                p = _slipped(c[t], d, pend_atr, cfg)
            elif step == P_CLOSE_FILL and pend == pend and fill_close:
                d, p = _open_qty(pend, q, c[t], pend_atr, cash + q * c[t], cfg)
                pend = np.nan
            elif step == P_END and last and close_end and q != 0.0:
                d = -q
                p = _slipped(c[t], d, atr[t], cfg)
                reason = R_END
            if d != 0.0:
                fee = _fee(d, p, cfg)
                cash -= d * p + fee
                tr, acc, closed, pnl = _fill(tr, acc, t, q, d, p, fee)
                q = 0.0 if closed else q + d
                if stops and q != 0.0:
                    stop, take = _levels(tr, cfg)
                if record:
                    nf, nt = _log(fills, trades, nf, nt, t, 0, d, p, fee, reason, tr, closed, pnl)
        equity = cash + q * c[t]
        if equity_out.shape[0] > 0:
            equity_out[t - start] = equity
        fold = fold_bar(fold, equity)
        if record:
            pos_out[t - start] = q
        if q != 0.0:
            exposed_bars += 1
        t += 1
    _store_stats(acc, exposed_bars, stats)
    if metrics_out.shape[0] > 0:
        finish_metrics(fold, stats, cfg[C_CASH], cfg[C_PPY], metrics_out)
    if record and q != 0.0:
        nt = _log_open(trades, nt, 0, end - 1, tr, q, c[end - 1])
    return nf, nt


@njit(error_model="numpy", cache=True, inline="always")
def _row_trade(book, j):
    r = book[j]
    return Trade(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])


@njit(error_model="numpy", cache=True)
def _book_fill(j, t, d, p, reason, cash, q, book, levels, acc, cfg, record, fills, trades, nf, nt):
    """Portfolio fill of ``d`` shares of symbol ``j`` at ``p`` (trade row ``book[j]``)."""
    fee = _fee(d, p, cfg)
    cash -= d * p + fee
    tr, acc, closed, pnl = _fill(_row_trade(book, j), acc, t, q[j], d, p, fee)
    for k in range(T_LEN):
        book[j, k] = tr[k]
    q[j] = 0.0 if closed else q[j] + d
    if q[j] != 0.0:
        levels[j, 0], levels[j, 1] = _levels(tr, cfg)
    if record:
        nf, nt = _log(fills, trades, nf, nt, t, j, d, p, fee, reason, tr, closed, pnl)
    return cash, acc, nf, nt


@njit(error_model="numpy", cache=True)
def _fill_weights(
    t, px, w_new, pend_atr, cash, q, book, levels, acc, cfg, record, fills, trades, nf, nt
):
    """Move every symbol with a new weight (``w_new[j]`` not NaN) to it at ``px[j]``: closes
    and reversals first, then the rest sized from the equity after them."""
    m = q.shape[0]
    for j in range(m):
        if w_new[j] == w_new[j] and _close_first(w_new[j], q[j]):
            p = _slipped(px[j], -q[j], pend_atr[j], cfg)
            cash, acc, nf, nt = _book_fill(
                j,
                t,
                -q[j],
                p,
                R_SIGNAL,
                cash,
                q,
                book,
                levels,
                acc,
                cfg,
                record,
                fills,
                trades,
                nf,
                nt,
            )
    equity = cash
    for j in range(m):
        equity += q[j] * px[j]
    for j in range(m):
        if w_new[j] == w_new[j]:
            d, p = _open_qty(w_new[j], q[j], px[j], pend_atr[j], equity, cfg)
            if d != 0.0:
                cash, acc, nf, nt = _book_fill(
                    j,
                    t,
                    d,
                    p,
                    R_SIGNAL,
                    cash,
                    q,
                    book,
                    levels,
                    acc,
                    cfg,
                    record,
                    fills,
                    trades,
                    nf,
                    nt,
                )
        w_new[j] = np.nan
    return cash, acc, nf, nt


@njit(error_model="numpy", cache=True)
def simulate_portfolio(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    vol: np.ndarray,
    atr: np.ndarray,
    target: np.ndarray,
    start: int,
    end: int,
    cfg: np.ndarray,
    record: bool,
    equity_out: np.ndarray,
    pos_out: np.ndarray,
    fills: np.ndarray,
    trades: np.ndarray,
    stats: np.ndarray,
    metrics_out: np.ndarray,
):
    """A portfolio of ``m`` symbols sharing cash over bars ``[start, end)`` of (n, m) arrays.

    Bar ``t`` reads inputs at index ``t`` only, in the order of the module docstring. On a bar
    with new orders, closes and reversals fill first so that new positions are sized from the
    equity after their proceeds and fees (like backtesting.py's exclusive orders); new weights
    are scaled down together when the gross exposure would exceed ``max_leverage``.
    Returns (n_fills, n_trades).
    """
    m = c.shape[1]
    book = np.zeros((m, T_LEN))
    levels = np.full((m, 2), np.nan)  # stop, take per symbol
    q = np.zeros(m)
    held = np.zeros(m)
    pending = np.full(m, np.nan)
    pend_atr = np.full(m, np.nan)
    acc = NO_ACC
    fold = fold_start(cfg[C_CASH])
    cash = cfg[C_CASH]
    nf = 0
    nt = 0
    fill_close = cfg[C_FILL_CLOSE] > 0
    close_end = cfg[C_CLOSE_END] > 0
    direction = int(cfg[C_DIRECTION])
    vol_sizing = cfg[C_SIZING] == 1.0
    stops = cfg[C_SL] > 0.0 or cfg[C_TP] > 0.0
    has_pending = False
    bankrupt = False
    exposed_bars = 0
    for t in range(start, end):
        # 1. orders decided at t-1 fill at this bar's open
        if has_pending:
            cash, acc, nf, nt = _fill_weights(
                t,
                o[t],
                pending,
                pend_atr,
                cash,
                q,
                book,
                levels,
                acc,
                cfg,
                record,
                fills,
                trades,
                nf,
                nt,
            )
            has_pending = False
        # 2. stop-loss / take-profit inside this bar
        if stops:
            for j in range(m):
                if q[j] != 0.0:
                    reason, price = _stop_check(
                        q[j], o[t, j], h[t, j], lo[t, j], levels[j, 0], levels[j, 1]
                    )
                    if reason >= 0:
                        p = _slipped(price, -q[j], atr[t - 1, j] if t > 0 else np.nan, cfg)
                        cash, acc, nf, nt = _book_fill(
                            j,
                            t,
                            -q[j],
                            p,
                            reason,
                            cash,
                            q,
                            book,
                            levels,
                            acc,
                            cfg,
                            record,
                            fills,
                            trades,
                            nf,
                            nt,
                        )
        # 3. mark to market at the close; out of money: liquidate and stop trading
        equity = cash
        for j in range(m):
            equity += q[j] * c[t, j]
        if equity <= 0.0 and not bankrupt:
            bankrupt = True
            for j in range(m):
                if q[j] != 0.0:
                    cash, acc, nf, nt = _book_fill(
                        j,
                        t,
                        -q[j],
                        c[t, j],
                        R_END,
                        cash,
                        q,
                        book,
                        levels,
                        acc,
                        cfg,
                        record,
                        fills,
                        trades,
                        nf,
                        nt,
                    )
            equity = cash
        # 4. decide from data <= t
        last = t == end - 1
        if not bankrupt and not (last and (close_end or not fill_close)):
            new_gross = 0.0
            held_gross = 0.0
            for j in range(m):
                sig = _signal(target[t, j], vol[t, j], direction, vol_sizing)
                if sig != held[j]:
                    held[j] = sig
                    w = sig * cfg[C_FRACTION]
                    if vol_sizing and sig != 0.0:
                        w = sig * cfg[C_VOLTGT] / vol[t, j]
                    pending[j] = w
                    pend_atr[j] = atr[t, j]
                    new_gross += abs(w)
                    has_pending = True
                elif equity > 0.0:
                    held_gross += abs(q[j] * c[t, j]) / equity
            if has_pending:
                room = max(cfg[C_MAXLEV] - held_gross, 0.0)
                if new_gross > room:
                    for j in range(m):
                        if pending[j] == pending[j]:
                            pending[j] *= room / new_gross
                if fill_close:
                    cash, acc, nf, nt = _fill_weights(
                        t,
                        c[t],
                        pending,
                        pend_atr,
                        cash,
                        q,
                        book,
                        levels,
                        acc,
                        cfg,
                        record,
                        fills,
                        trades,
                        nf,
                        nt,
                    )
                    has_pending = False
        if last and close_end:
            for j in range(m):
                if q[j] != 0.0:
                    p = _slipped(c[t, j], -q[j], atr[t, j], cfg)
                    cash, acc, nf, nt = _book_fill(
                        j,
                        t,
                        -q[j],
                        p,
                        R_END,
                        cash,
                        q,
                        book,
                        levels,
                        acc,
                        cfg,
                        record,
                        fills,
                        trades,
                        nf,
                        nt,
                    )
        equity = cash
        exposed = False
        for j in range(m):
            equity += q[j] * c[t, j]
            if q[j] != 0.0:
                exposed = True
            if record:
                pos_out[t - start, j] = q[j]
        equity_out[t - start] = equity
        fold = fold_bar(fold, equity)
        if exposed:
            exposed_bars += 1
    _store_stats(acc, exposed_bars, stats)
    if metrics_out.shape[0] > 0:
        finish_metrics(fold, stats, cfg[C_CASH], cfg[C_PPY], metrics_out)
    if record:
        for j in range(m):
            if q[j] != 0.0:
                nt = _log_open(trades, nt, j, end - 1, _row_trade(book, j), q[j], c[end - 1, j])
    return nf, nt


# ---------------------------------------------------------------------------------------------
# Python API


@dataclass
class BacktestResult:
    """Everything one run produced. ``equity``/``positions`` are end-of-bar values."""

    timestamps: pd.DatetimeIndex
    symbols: list[str]
    equity: pd.Series
    positions: pd.DataFrame
    fills: pd.DataFrame
    trades: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)


OHLC = ("open", "high", "low", "close")


def validate_bars(bars: pd.DataFrame, name: str = "bars") -> None:
    """Check the bar contract; raises ValueError saying what is wrong and how to fix it."""
    missing = [col for col in ("timestamp", *OHLC, "volume") if col not in bars.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}; expected timestamp, {OHLC}, volume")
    ts = bars["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype) or str(ts.dt.tz) != "UTC":
        raise ValueError(f"{name}.timestamp must be datetime64[ns, UTC], got {ts.dtype}")
    if not (ts.is_monotonic_increasing and ts.is_unique):
        raise ValueError(f"{name}.timestamp must be strictly increasing: sort and deduplicate")
    for col in OHLC:
        values = bars[col].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if bad.size:
            raise ValueError(
                f"{name}.{col} has a non-finite or non-positive price at row {bad[0]} "
                f"({ts.iloc[bad[0]]}); drop or repair those rows first"
            )


def align_bars(bars: Mapping[str, pd.DataFrame]) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Stack per-symbol bars into (n, m) arrays on their common timestamps (inner join).

    Returns the timestamps and a dict ``{"open", "high", "low", "close", "volume"} -> (n, m)``
    with columns in ``bars`` order.
    """
    if not bars:
        raise ValueError("align_bars: no symbols given")
    for sym, df in bars.items():
        validate_bars(df, f"bars[{sym!r}]")
    common = None
    for df in bars.values():
        idx = pd.DatetimeIndex(df["timestamp"])
        common = idx if common is None else common.intersection(idx)
    assert common is not None
    if len(common) == 0:
        raise ValueError("align_bars: the symbols share no timestamp")
    out = {}
    for col in (*OHLC, "volume"):
        cols = []
        for df in bars.values():
            s = pd.Series(df[col].to_numpy(np.float64), index=pd.DatetimeIndex(df["timestamp"]))
            cols.append(s.reindex(common).to_numpy())
        out[col] = np.ascontiguousarray(np.column_stack(cols))
    return common, out


def aux_arrays(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, cfg: BacktestConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Causal (vol, atr) arrays of shape (n, m) the kernel uses for sizing and slippage."""
    n, m = close.shape
    vol = np.full((n, m), np.nan)
    atr = np.full((n, m), np.nan)
    for j in range(m):
        cj = np.ascontiguousarray(close[:, j])
        if cfg.sizing == "vol_target":
            vol[:, j] = indicators.realized_vol(cj, cfg.vol_window, cfg.periods_per_year)
        if cfg.slippage_atr > 0:
            atr[:, j] = indicators.atr(
                np.ascontiguousarray(high[:, j]),
                np.ascontiguousarray(low[:, j]),
                cj,
                cfg.atr_window,
            )
    return vol, atr


def _capacity(
    target: np.ndarray, vol: np.ndarray, cfg: BacktestConfig, start: int, end: int
) -> int:
    """Upper bound on fills (and trades) of a run.

    Each change of the effective target makes at most two fills (close + open); a stop or the
    final liquidation only replaces the close a later change would have made, plus one per symbol.
    """
    eff = np.nan_to_num(target[start:end])
    if cfg.direction == "long_only":
        eff = np.maximum(eff, 0.0)
    elif cfg.direction == "short_only":
        eff = np.minimum(eff, 0.0)
    if cfg.sizing == "vol_target":
        eff = np.where(vol[start:end] > 0, eff, 0.0)
    changes = int((np.diff(eff, axis=0) != 0).sum()) + int((eff[0] != 0).sum())
    return 2 * changes + 2 * target.shape[1] + 1


def simulate_arrays(
    arrays: Mapping[str, np.ndarray],
    target: np.ndarray,
    cfg: BacktestConfig,
    *,
    start: int = 0,
    end: int | None = None,
    record: bool = True,
    kernel: str = "auto",
) -> dict[str, Any]:
    """Array-level run over ``[start, end)``: (n, m) ``open/high/low/close`` and ``target``.

    Bars before ``start`` serve only as history (indicator warm-up for vol/ATR). ``kernel``:
    'auto' runs one symbol on ``simulate_single`` and several on ``simulate_portfolio``.
    Returns raw arrays: equity (end-start,), positions (end-start, m), fills (k, 6), trades
    (k, 11), stats and the metrics dict.
    """
    o, h, lo, c = (np.ascontiguousarray(arrays[k], dtype=np.float64) for k in OHLC)
    if c.ndim == 1:
        o, h, lo, c = (a[:, None] for a in (o, h, lo, c))
    target = np.asarray(target, dtype=np.float64)
    if target.ndim == 1:
        target = target[:, None]
    target = np.ascontiguousarray(target)
    n, m = c.shape
    end = n if end is None else end
    if target.shape != (n, m):
        raise ValueError(f"target has shape {target.shape}; the bars need ({n}, {m})")
    if not 0 <= start < end <= n:
        raise ValueError(f"need 0 <= start < end <= {n}, got start={start}, end={end}")
    finite = target[np.isfinite(target)]
    if finite.size and np.abs(finite).max() > 1.0:
        raise ValueError("targets must lie in [-1, 1] (NaN = flat); scale them first")
    vol, atr = aux_arrays(h, lo, c, cfg)
    cap = _capacity(target, vol, cfg, start, end) if record else 0
    if kernel not in ("auto", "single", "portfolio"):
        raise ValueError(f"kernel={kernel!r}; use 'auto', 'single' or 'portfolio'")
    single = kernel == "single" or (kernel == "auto" and m == 1)
    if single and m != 1:
        raise ValueError(f"kernel='single' runs one symbol; the bars have {m}")
    equity = np.empty(end - start)
    pos = np.zeros((end - start, m) if record else (1, m))
    fills = np.zeros((cap, len(FILL_COLUMNS)))
    trades = np.zeros((cap, len(TRADE_COLUMNS)))
    stats = np.zeros(S_LEN)
    metrics = np.empty(len(METRICS))
    if single:
        o1, h1, lo1, c1, vol1, atr1, tgt1 = (
            np.ascontiguousarray(a[:, 0]) for a in (o, h, lo, c, vol, atr, target)
        )
        nf, nt = simulate_single(o1, h1, lo1, c1, vol1, atr1, tgt1, start, end,
                                 config_vector(cfg), record, equity, pos[:, 0], fills, trades,
                                 stats, metrics)  # fmt: skip
    else:
        nf, nt = simulate_portfolio(
            o,
            h,
            lo,
            c,
            vol,
            atr,
            target,
            start,
            end,
            config_vector(cfg),
            record,
            equity,
            pos,
            fills,
            trades,
            stats,
            metrics,
        )
    assert nf <= cap and nt <= cap, "fill capacity bound violated"
    return {
        "equity": equity,
        "positions": pos,
        "fills": fills[:nf],
        "trades": trades[:nt],
        "stats": stats,
        "metrics": dict(zip(METRICS, metrics.tolist(), strict=True)),
    }


def run_backtest(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    targets: np.ndarray | pd.Series | pd.DataFrame,
    cfg: BacktestConfig | None = None,
    *,
    start: int = 0,
    end: int | None = None,
) -> BacktestResult:
    """Backtest target positions on one series or an aligned portfolio of symbols.

    ``bars``: one bar DataFrame, or ``{symbol: DataFrame}`` (inner-joined on timestamps).
    ``targets``: (n,) for one series, (n, m) or a DataFrame with one column per symbol,
    values in [-1, 1] computed from bars <= t (NaN = flat). Bars before ``start`` are history
    only. Metrics are computed over the simulated span.
    """
    cfg = cfg or BacktestConfig()
    if isinstance(bars, pd.DataFrame):
        validate_bars(bars)
        symbols = ["asset"]
        ts = pd.DatetimeIndex(bars["timestamp"])
        arrays = {k: bars[k].to_numpy(np.float64)[:, None] for k in (*OHLC, "volume")}
    else:
        symbols = list(bars)
        ts, arrays = align_bars(bars)
    if isinstance(targets, pd.DataFrame):
        target = targets[symbols].to_numpy(np.float64)
    else:
        target = np.asarray(targets, dtype=np.float64)
    raw = simulate_arrays(arrays, target, cfg, start=start, end=end)
    end = len(ts) if end is None else end
    span = ts[start:end]
    fills = pd.DataFrame(raw["fills"], columns=list(FILL_COLUMNS))
    fills = _label(fills, ts, symbols, {"bar": "time"})
    fills["side"] = np.where(fills["qty"] > 0, "buy", "sell")
    fills["reason"] = [REASONS[int(r)] for r in fills["reason"]]
    trades = pd.DataFrame(raw["trades"], columns=list(TRADE_COLUMNS))
    trades = _label(trades, ts, symbols, {"entry_bar": "entry_time", "exit_bar": "exit_time"})
    trades["is_open"] = trades["is_open"].astype(bool)
    equity = pd.Series(raw["equity"], index=span, name="equity")
    return BacktestResult(
        timestamps=span,
        symbols=symbols,
        equity=equity,
        positions=pd.DataFrame(raw["positions"], index=span, columns=symbols),
        fills=fills,
        trades=trades,
        metrics=raw["metrics"],
    )


def _label(
    df: pd.DataFrame, ts: pd.DatetimeIndex, symbols: list[str], time_cols: dict[str, str]
) -> pd.DataFrame:
    """Turn index columns of kernel records into int bars, timestamps and symbol names."""
    df = df.copy()
    for bar_col, time_col in time_cols.items():
        df[bar_col] = df[bar_col].astype(np.int64)
        df.insert(df.columns.get_loc(bar_col) + 1, time_col, ts[df[bar_col].to_numpy()])
    df["symbol"] = np.asarray(symbols, dtype=object)[df["symbol"].to_numpy(np.int64)]
    return df
