"""The engine with the research stack's own parts: a saved-and-loaded model bundle as the
predictor and the backtest's ``positions_from_predictions`` as the policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeptrade.live.adapters import PredictionPolicy
from deeptrade.live.broker import AlpacaKeys
from deeptrade.live.protocols import Bar, Predictor
from deeptrade.live.simple import RollingFeatures
from tests.fakes.alpaca_trading import FakeAlpaca
from tests.unit.live.harness import NOW, build_engine, history

NAMES = ["ret_1", "mom", "vol", "z"]


def test_backtest_rank_rule_drives_live_targets(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    policy = PredictionPolicy(mode="rank", top_k=1, long_only=True, notional_per_unit=1_050.0)
    eng = build_engine(tmp_path, fake.url, keys, policy=policy)
    report = eng.run_cycle(NOW)
    assert report.targets == {"AAA": 10.0, "BBB": 0.0, "CCC": 0.0}  # AAA has the top score
    assert [(o["symbol"], o["qty"]) for o in fake.accepted] == [("AAA", 10.0)]


def _windows(window: int) -> dict[str, np.ndarray]:
    """The last ``window`` feature rows per symbol, computed here independently of the engine."""
    feats = RollingFeatures(window=20)
    out = {}
    for sym, df in history().items():
        rows = []
        for r in df[df["timestamp"] < NOW].itertuples():
            bar = Bar(
                symbol=sym,
                timestamp=r.timestamp.to_pydatetime(),
                open=r.open,
                high=r.high,
                low=r.low,
                close=r.close,
                volume=r.volume,
            )
            f = feats.update(bar)
            rows.append([f[n] for n in NAMES])
        out[sym] = np.array(rows[-window:])
    return out


def test_model_bundle_is_a_live_predictor(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    import torch

    from deeptrade.models import build_model, model_config
    from deeptrade.train.bundle import Member, load_bundle, save_bundle
    from deeptrade.train.data import Scaler

    window = 5
    cfg = model_config("cnn", {"channels": 4, "kernel": 3, "layers": 1, "dropout": 0.0})
    torch.manual_seed(0)
    model = build_model("cnn", cfg, n_features=len(NAMES), window=window, head="regression")
    save_bundle(
        tmp_path / "bundle",
        model=Member(name="cnn", config=cfg, model=model),
        head="regression",
        window=window,
        feature_names=NAMES,
        scaler=Scaler(mean=np.zeros(len(NAMES)), std=np.full(len(NAMES), 0.01)),
        label={"kind": "forward_return", "horizon": 1},
        feature_spec_hash="rolling-features-v1",
    )
    bundle = load_bundle(tmp_path / "bundle")
    assert isinstance(bundle, Predictor)

    policy = PredictionPolicy(mode="rank", top_k=1, long_only=True, notional_per_unit=1_050.0)
    eng = build_engine(tmp_path, fake.url, keys, predictor=bundle, policy=policy)
    report = eng.run_cycle(NOW)

    wins = _windows(window)
    expected = bundle.predict(np.stack([wins[s] for s in sorted(wins)]))
    assert report.preds == pytest.approx(dict(zip(sorted(wins), expected, strict=True)))
    best = max(report.preds, key=lambda s: report.preds[s])
    assert [o["symbol"] for o in fake.accepted] == [best]
