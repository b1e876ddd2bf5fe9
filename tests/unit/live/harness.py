"""Shared test setup: market data for the fake broker and a LiveEngine built from real parts.

Imported by conftest.py and by engine_proc.py (the engine run in a subprocess for crash tests).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from deeptrade.live.broker import AlpacaKeys, Broker, BrokerConfig, make_clients
from deeptrade.live.engine import EngineConfig, LiveEngine
from deeptrade.live.journal import Journal
from deeptrade.live.risk import RiskConfig
from deeptrade.live.simple import LinearPredictor, RollingFeatures, ThresholdPolicy
from tests.fakes.alpaca_trading import make_bars

KEY_ID = "PKFAKEKEYID0123456789"
SECRET = "fakeSecretKey/abcdefghijklmnopqrstuvwxyz01"
NOW = dt.datetime(2024, 1, 2, 15, 30, tzinfo=dt.UTC)
"""First decision time: the bar opened 15:29 is the last closed one; 15:30 is forming."""
STEP = dt.timedelta(minutes=1)
PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}
"""Last trade prices; the default policy (1,050 per long) targets AAA 10 and CCC 52 shares."""
SLOPES = {"AAA": 0.002, "BBB": -0.002, "CCC": 0.001}


def history(
    prices: dict[str, float] = PRICES, *, n: int = 60, after: int = 5
) -> dict[str, pd.DataFrame]:
    """Bars per symbol from NOW - n minutes to NOW + after minutes (AAA, CCC rising, BBB
    falling); the bar closing at NOW ends at the last trade price."""
    out = {}
    for sym, px in prices.items():
        slope = SLOPES.get(sym, 0.001)
        closes = [px * (1 + slope) ** i * (1 + 0.001 * (-1) ** i) for i in range(-n + 1, after + 1)]
        out[sym] = make_bars(closes, start=NOW - n * STEP, step=STEP)
    return out


def broker_config(url: str, **kw: Any) -> BrokerConfig:
    base: dict[str, Any] = dict(
        mode="paper",
        trading_url=url,
        data_url=url,
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        max_attempts=3,
        retry_backoff_s=0.01,
    )
    base.update(kw)
    return BrokerConfig(**base)


def engine_config(tmp_path: Path, **kw: Any) -> EngineConfig:
    base: dict[str, Any] = dict(
        release_id="test-release@0123456789ab",
        symbols=sorted(PRICES),
        timeframe="1Min",
        journal_path=str(tmp_path / "journal.sqlite"),
        kill_switch_path=str(tmp_path / "KILL"),
        fill_timeout_s=0.3,
        cancel_timeout_s=0.5,
        poll_interval_s=0.01,
        warmup_lookback_s=2 * 3600,
    )
    base.update(kw)
    return EngineConfig(**base)


def risk_config(**kw: Any) -> RiskConfig:
    base: dict[str, Any] = dict(
        max_position_notional=1_500.0,
        max_gross_exposure=5_000.0,
        max_orders_per_minute=20,
        daily_loss_limit=1_000.0,
        price_collar_pct=0.05,
    )
    base.update(kw)
    return RiskConfig(**base)


def build_engine(
    tmp_path: Path,
    url: str,
    keys: AlpacaKeys,
    *,
    broker_kw: dict[str, Any] | None = None,
    engine_kw: dict[str, Any] | None = None,
    risk_kw: dict[str, Any] | None = None,
    notional: float = 1_050.0,
    predictor: Any = None,
    policy: Any = None,
    **engine_args: Any,
) -> LiveEngine:
    bcfg = broker_config(url, **(broker_kw or {}))
    ecfg = engine_config(tmp_path, **(engine_kw or {}))
    return LiveEngine(
        cfg=ecfg,
        risk=risk_config(**(risk_kw or {})),
        broker=Broker(make_clients(bcfg, keys, environ={}), bcfg),
        journal=Journal(ecfg.journal_path),
        features=RollingFeatures(window=20),
        predictor=predictor or LinearPredictor(weights={"mom": 1.0}),
        policy=policy or ThresholdPolicy(long_above=0.0, notional_per_symbol=notional),
        **engine_args,
    )
