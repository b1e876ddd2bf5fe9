"""Live decision latency per cycle: 500 symbols, one core, broker excluded.

    .venv/bin/python bench/live.py [--symbols 500] [--cycles 200] [--quick]

One cycle = one new closed bar per symbol through the engine's own decision code
(``deeptrade.live.decide.Decider``: streaming feature update, model predict on the feature
windows, policy targets, proposed orders) plus the pre-trade risk check
(``deeptrade.live.risk.check_orders``). Target: p95 <= 100 ms.

Features: ``deeptrade.features.streaming.StreamingFeatures`` when it exists (the production
calculator), else ``deeptrade.live.simple.RollingFeatures`` (the line says which). Model: a
small 1D-CNN saved and loaded as a real ``deeptrade.train.bundle`` (window 8).

Anchor (same run): what a cycle costs without a streaming calculator, recomputing each symbol's
features from its history with the batch path ``deeptrade.features.core.compute_features``
(enough bars for its warm-up). Prints JSON lines; the last one is the ratio.
"""

from __future__ import annotations

import os

# One core, as asked: pin before numpy/torch start their thread pools.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deeptrade.live.adapters import PredictionPolicy  # noqa: E402
from deeptrade.live.decide import Decider  # noqa: E402
from deeptrade.live.protocols import Bar, FeatureState  # noqa: E402
from deeptrade.live.risk import RiskConfig, RiskContext, check_orders  # noqa: E402
from deeptrade.live.simple import RollingFeatures  # noqa: E402

T0 = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=1)


def _features() -> tuple[Any, list[str], str]:
    fallback = RollingFeatures(window=20)
    label = "deeptrade.live.simple.RollingFeatures (4 features)"
    try:
        from deeptrade.features.streaming import StreamingFeatures  # type: ignore[import-not-found]

        sf = StreamingFeatures()
        names = list(sf.feature_names)
    except Exception as exc:  # not written yet, or an API this bench does not know
        return fallback, list(fallback.feature_names), f"{label}; StreamingFeatures: {exc!r}"
    if not isinstance(sf, FeatureState):
        return fallback, list(fallback.feature_names), f"{label}; StreamingFeatures lacks update()"
    return sf, names, f"deeptrade.features.streaming.StreamingFeatures ({len(names)} features)"


def _model(names: list[str], tmp: Path) -> tuple[Any, str]:
    import torch

    torch.set_num_threads(1)
    from deeptrade.models import build_model, model_config
    from deeptrade.train.bundle import Member, load_bundle, save_bundle
    from deeptrade.train.data import Scaler

    window = 8
    cfg = model_config("cnn", {"channels": 16, "kernel": 3, "layers": 2, "dropout": 0.0})
    torch.manual_seed(0)
    model = build_model("cnn", cfg, n_features=len(names), window=window, head="regression")
    save_bundle(
        tmp / "bundle",
        model=Member(name="cnn", config=cfg, model=model),
        head="regression",
        window=window,
        feature_names=names,
        scaler=Scaler(mean=np.zeros(len(names)), std=np.ones(len(names))),
        label={"kind": "forward_return", "horizon": 1},
    )
    return load_bundle(tmp / "bundle"), f"cnn bundle (channels 16, 2 layers, window {window})"


def _prices(symbols: int, bars: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.001, size=(bars, symbols))
    return 20.0 + 180.0 * rng.random(symbols) * np.exp(np.cumsum(steps, axis=0))


def _bars(closes: np.ndarray, t: int, symbols: list[str]) -> list[Bar]:
    ts = T0 + t * STEP
    prev = closes[t - 1] if t else closes[t]
    return [
        Bar(
            symbol=s,
            timestamp=ts,
            open=float(prev[i]),
            high=float(max(prev[i], closes[t, i]) * 1.0005),
            low=float(min(prev[i], closes[t, i]) * 0.9995),
            close=float(closes[t, i]),
            volume=1000.0 + i,
        )
        for i, s in enumerate(symbols)
    ]


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
    }


def bench_decision(n_symbols: int, cycles: int, warm: int) -> dict[str, Any]:
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    closes = _prices(n_symbols, warm + cycles)
    features, names, feat_label = _features()
    with tempfile.TemporaryDirectory() as tmp:
        predictor, model_label = _model(names, Path(tmp))
    policy = PredictionPolicy(mode="rank", top_k=25, long_only=False, notional_per_unit=25_000.0)
    decider = Decider(symbols=symbols, features=features, predictor=predictor, policy=policy)
    risk = RiskConfig(
        max_position_notional=2_000.0,
        max_gross_exposure=60_000.0,
        max_orders_per_minute=1000,
        allow_short=True,
    )
    for t in range(warm):  # warm-up (features, lazy imports, first torch call), not timed
        decider.update(_bars(closes, t, symbols))
    decider.targets(decider.predict(), equity=1e6)
    positions: dict[str, float] = {}
    stages: dict[str, list[float]] = {"features": [], "predict": [], "policy_risk": [], "total": []}
    for t in range(warm, warm + cycles):
        bars = _bars(closes, t, symbols)
        a = time.perf_counter()
        decider.update(bars)
        b = time.perf_counter()
        preds = decider.predict()
        c = time.perf_counter()
        targets = decider.targets(preds, equity=1e6)
        proposed = decider.proposals(targets, positions)
        last = dict(decider.last_close)
        ctx = RiskContext(
            now=T0 + t * STEP,
            market_open=True,
            positions=positions,
            last_trade=last,
            tradable=dict.fromkeys(symbols, True),
            shortable=dict.fromkeys(symbols, True),
            gross_exposure=sum(abs(q) * last[s] for s, q in positions.items()),
            equity=1e6,
            last_equity=1e6,
            buying_power=1e6,
        )
        decision = check_orders(proposed, ctx, risk)
        d = time.perf_counter()
        for o in decision.accepted:  # as if filled, so the next cycle trades differences
            positions[o.symbol] = positions.get(o.symbol, 0.0) + o.signed_qty
        stages["features"].append(b - a)
        stages["predict"].append(c - b)
        stages["policy_risk"].append(d - c)
        stages["total"].append(d - a)
    assert len(preds) == n_symbols, f"only {len(preds)} of {n_symbols} symbols were scored"
    return {
        "features": feat_label,
        "model": model_label,
        "stages": {k: _pct(v) for k, v in stages.items()},
        "orders_last_cycle": len(proposed),
    }


def bench_anchor(n_symbols: int, cycles: int) -> dict[str, Any]:
    from deeptrade.features.core import compute_features
    from deeptrade.features.spec import warmup_bars

    hist = warmup_bars() + 1
    closes = _prices(n_symbols, hist + cycles, seed=1)
    ts = pd.date_range(T0, periods=hist + cycles, freq="1min")

    def frame(i: int, t: int) -> pd.DataFrame:
        rows = slice(t - hist + 1, t + 1)
        c = closes[rows, i]
        return pd.DataFrame(
            {
                "timestamp": ts[rows],
                "open": c,
                "high": c * 1.0005,
                "low": c * 0.9995,
                "close": c,
                "volume": 1000.0,
            }
        )

    compute_features(frame(0, hist - 1))  # numba compile / cache load, not timed
    times = []
    for t in range(hist - 1, hist - 1 + cycles):
        frames = [frame(i, t) for i in range(n_symbols)]  # building inputs is not timed
        a = time.perf_counter()
        for f in frames:
            compute_features(f)
        times.append(time.perf_counter() - a)
    return {"history_bars": hist, **_pct(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--anchor-cycles", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="50 symbols, 20 cycles")
    args = ap.parse_args()
    if args.quick:
        args.symbols, args.cycles, args.anchor_cycles = 50, 20, 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    ours = bench_decision(args.symbols, args.cycles, warm=30)
    for stage, stats in ours["stages"].items():
        print(
            json.dumps(
                {
                    "bench": "live_decision",
                    "stage": stage,
                    "symbols": args.symbols,
                    "cycles": args.cycles,
                    **stats,
                    "features": ours["features"],
                    "model": ours["model"],
                    "cores": 1,
                    **({"target_ms": 100} if stage == "total" else {}),
                }
            )
        )
    anchor = bench_anchor(args.symbols, args.anchor_cycles)
    print(
        json.dumps(
            {
                "bench": "live_features_anchor",
                "impl": "deeptrade.features.core.compute_features "
                "(batch recompute per symbol per cycle)",
                "symbols": args.symbols,
                "cycles": args.anchor_cycles,
                **anchor,
                "cores": 1,
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "live_features_ratio",
                "anchor_over_ours_p50": round(
                    anchor["p50_ms"] / ours["stages"]["features"]["p50_ms"], 1
                ),
                "note": "ours: " + ours["features"] + "; anchor computes the 45 batch features",
            }
        )
    )


if __name__ == "__main__":
    main()
