"""Cross-checks on real daily bars against backtesting.py 0.6.6 and vectorbt 1.2.0.

Strategy: long while SMA(10) > SMA(30), flat otherwise; commission 10 bps of notional on
every fill; all-in sizing. Trades and equity agree to 1e-9 relative (in practice ~1e-14).

How the conventions were aligned:

- backtesting.py trades whole shares: ``buy(size=0.9999)`` (a fraction of the available
  equity) buys ``floor(0.9999 * equity / (price * (1 + commission)))`` shares -- deeptrade's
  ``fraction=0.9999, lot_size=1`` (the order's outlay including the fee is the budget).
- backtesting.py calls ``Strategy.next`` first on the bar after the slowest indicator becomes
  valid (``start = 1 + warm-up``); deeptrade decides on every bar, so the targets before that
  bar are set flat here.
- ``trade_on_close=True`` fills at the decision bar's close like ``fill="close"``, but
  backtesting.py books that fill into the next bar's equity, so its equity at a fill bar lacks
  the fill's commission; the equity curves are compared with that offset.
- ``finalize_trades=False``: a trade open at the end is not in its list and the final equity
  marks it at the last close, as deeptrade does by default (``close_at_end=False``).
- ``exclusive_orders=True``: an order closes the open position first, deeptrade's rule.
- vectorbt: ``Portfolio.from_signals`` with entries/exits shifted one bar and
  ``price=open`` for next-open fills (unshifted, ``price=close`` for close fills); the default
  ``size=inf`` spends all cash with the fee inside the outlay (deeptrade's sizing); fractional
  shares by default, ``size_granularity=1`` for whole shares; ``fixed_fees`` is deeptrade's
  ``min_fee`` with no per-share fee. Its trade records include a final open trade.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _backtest_data import spx_bars, stock_bars

from deeptrade.backtest.engine import BacktestConfig, run_backtest
from deeptrade.backtest.strategies import MACross

# vectorbt's own deprecation notes (pandas 3 inplace=, numba reflected lists), not ours
pytestmark = [
    pytest.mark.filterwarnings("ignore:The inplace keyword"),
    pytest.mark.filterwarnings("ignore::numba.NumbaPendingDeprecationWarning"),
]

FAST, SLOW, COMMISSION, CASH = 10, 30, 0.001, 1_000_000.0
DATASETS = {"sp500": lambda: spx_bars(), "MSFT": lambda: stock_bars("MSFT")}


@pytest.fixture(scope="module", params=list(DATASETS))
def bars(request) -> pd.DataFrame:
    return DATASETS[request.param]()


def _sma(x, n):
    return pd.Series(x).rolling(n).mean().to_numpy()


def _run_backtesting_py(bars: pd.DataFrame, trade_on_close: bool):
    from backtesting import Backtest, Strategy

    class SmaLong(Strategy):
        def init(self):
            self.fast = self.I(_sma, self.data.Close, FAST)
            self.slow = self.I(_sma, self.data.Close, SLOW)

        def next(self):
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy(size=0.9999)
            elif self.position:
                self.position.close()

    data = pd.DataFrame(
        {k.capitalize(): bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(bars["timestamp"]).tz_localize(None),
    )
    bt = Backtest(
        data,
        SmaLong,
        cash=CASH,
        commission=COMMISSION,
        trade_on_close=trade_on_close,
        exclusive_orders=True,
        finalize_trades=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # progress bars and "trades remain open" notes
        return bt.run()


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_matches_backtesting_py(bars, fill):
    stats = _run_backtesting_py(bars, trade_on_close=fill == "close")
    target = MACross.signals(bars, fast=FAST, slow=SLOW)
    target[:SLOW] = 0.0  # backtesting.py's first decision is on bar SLOW (index SLOW - 1 + 1)
    cfg = BacktestConfig(
        initial_cash=CASH,
        commission_bps=COMMISSION * 1e4,
        fill=fill,
        direction="long_only",
        fraction=0.9999,
        lot_size=1,
    )
    ours = run_backtest(bars, target, cfg)
    theirs = stats["_trades"]
    closed = ours.trades[~ours.trades["is_open"]].reset_index(drop=True)
    assert len(theirs) == len(closed) > 20
    np.testing.assert_array_equal(theirs["Size"].to_numpy(), closed["size"].to_numpy())
    np.testing.assert_array_equal(theirs["EntryBar"].to_numpy(), closed["entry_bar"].to_numpy())
    np.testing.assert_array_equal(theirs["ExitBar"].to_numpy(), closed["exit_bar"].to_numpy())
    for a, b in (
        ("EntryPrice", "entry_price"),
        ("ExitPrice", "exit_price"),
        ("PnL", "pnl"),
        ("Commission", "fees"),
    ):
        np.testing.assert_allclose(theirs[a].to_numpy(), closed[b].to_numpy(), rtol=1e-9, err_msg=a)
    assert stats["Equity Final [$]"] == pytest.approx(ours.equity.iloc[-1], rel=1e-9)
    their_equity = stats["_equity_curve"]["Equity"].to_numpy()
    our_equity = ours.equity.to_numpy().copy()
    if fill == "close":
        fee_at_bar = ours.fills.groupby("bar")["fee"].sum()
        our_equity[fee_at_bar.index.to_numpy()] += fee_at_bar.to_numpy()
    np.testing.assert_allclose(their_equity, our_equity, rtol=1e-9)


@pytest.mark.slow  # vectorbt compiles its kernels on first use (~30-50 s on a cold cache)
@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize(
    ("lot", "fixed_fee"),
    [(0.0, 0.0), (1.0, 0.0), (0.0, 5.0)],
    ids=["fractional", "whole-shares", "fixed-fee"],
)
def test_matches_vectorbt(bars, fill, lot, fixed_fee):
    import vectorbt as vbt

    idx = pd.DatetimeIndex(bars["timestamp"]).tz_localize(None)
    close = pd.Series(bars["close"].to_numpy(), index=idx)
    above = vbt.MA.run(close, FAST).ma > vbt.MA.run(close, SLOW).ma
    entries, exits = above, ~above
    price = close
    if fill == "next_open":
        entries, exits = entries.vbt.signals.fshift(1), exits.vbt.signals.fshift(1)
        price = pd.Series(bars["open"].to_numpy(), index=idx)
    extra = {"size_granularity": lot} if lot else {}
    pf = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        price=price,
        fees=COMMISSION,
        fixed_fees=fixed_fee,
        init_cash=CASH,
        freq="1D",
        **extra,
    )
    cfg = BacktestConfig(
        initial_cash=CASH,
        commission_bps=COMMISSION * 1e4,
        min_fee=fixed_fee,
        fill=fill,
        direction="long_only",
        lot_size=lot,
    )
    ours = run_backtest(bars, MACross.signals(bars, fast=FAST, slow=SLOW), cfg)
    theirs = pf.trades.records_readable
    assert len(theirs) == len(ours.trades) > 20
    np.testing.assert_array_equal(
        theirs["Status"].eq("Open").to_numpy(), ours.trades["is_open"].to_numpy()
    )
    for a, b in (
        ("Size", "size"),
        ("Avg Entry Price", "entry_price"),
        ("Avg Exit Price", "exit_price"),
        ("PnL", "pnl"),
    ):
        np.testing.assert_allclose(
            theirs[a].to_numpy(), ours.trades[b].to_numpy(), rtol=1e-9, err_msg=a
        )
    fees = (theirs["Entry Fees"] + theirs["Exit Fees"]).to_numpy()
    np.testing.assert_allclose(fees, ours.trades["fees"].to_numpy(), rtol=1e-9)
    entry_idx = idx.get_indexer(pd.DatetimeIndex(theirs["Entry Timestamp"]))
    np.testing.assert_array_equal(entry_idx, ours.trades["entry_bar"].to_numpy())
    assert pf.final_value() == pytest.approx(ours.equity.iloc[-1], rel=1e-9)
    np.testing.assert_allclose(pf.value().to_numpy(), ours.equity.to_numpy(), rtol=1e-9)
