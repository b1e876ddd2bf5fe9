"""Bundles: predictions equal before and after save/load for every model kind, what they
record, and no look-ahead in predict_frame. Trained on real S&P 500 bars (``arch``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from deeptrade.models import build_model, model_config
from deeptrade.models.base import TorchScorer
from deeptrade.models.heads import output
from deeptrade.train import (
    Member,
    TrainerConfig,
    TrainSpec,
    load_bundle,
    prepare,
    save_bundle,
    train_model,
)
from deeptrade.train.metrics import evaluate

WINDOW = 10
FAST = TrainerConfig(epochs=1, global_batch_size=64, micro_batch_size=64)
XGB_SMALL = {"n_estimators": 20, "max_depth": 3, "n_jobs": 1, "device": "cpu"}


@pytest.mark.parametrize(
    ("name", "params", "head"),
    [
        ("lstm", {"hidden": 6, "layers": 2}, "regression"),
        ("transformer", {"d_model": 8, "heads": 2, "layers": 1, "ff": 16}, "direction"),
        ("cnn", {"channels": 4}, "regression"),
        ("xgboost", {**XGB_SMALL, "last_k": 3}, "direction"),
    ],
)
def test_predict_is_identical_after_save_and_load(
    spx: pd.DataFrame, tmp_path: Path, name: str, params: dict[str, Any], head: str
) -> None:
    spec = TrainSpec(model=name, params=params, head=head, window=WINDOW, horizon=1)
    p = prepare(spec, spx)
    cfg = model_config(name, params)
    torch.manual_seed(0)
    model = build_model(name, cfg, n_features=3, window=WINDOW, head=head)  # type: ignore[arg-type]
    x_scaled, y = p.dataset(p.train, WINDOW).batch(np.arange(len(p.train)))
    if name == "xgboost":
        model.fit(x_scaled, y, seed=0)
        scorer: Any = model
    else:
        scorer = TorchScorer(model)
    # Raw windows, as backtest and live hold them.
    raw = p.X[p.test[:, None] + np.arange(-WINDOW + 1, 1)]
    scores = scorer.scores(p.scaler.transform(raw))
    expected = output(head, scores * p.label_scale if head == "regression" else scores)  # type: ignore[arg-type]

    ts = pd.DatetimeIndex(spx["timestamp"])
    save_bundle(
        tmp_path / "b",
        model=Member(name=name, config=cfg, model=model),
        head=head,  # type: ignore[arg-type]
        window=WINDOW,
        feature_names=p.feature_names,
        scaler=p.scaler,
        label={"kind": "forward_return", "horizon": 1},
        label_scale=p.label_scale,
        feature_spec_hash="abc123",
        train_window=(ts[0], ts[300]),
        metrics={"val": {"ic": 0.1}},
    )
    b = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(b.predict(raw), expected)
    # One window alone: same weights, but a batch of 1 may take another matmul kernel.
    np.testing.assert_allclose(b.predict(raw[0]), expected[:1], rtol=1e-5)
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["features"] == {"names": ["ret_1", "ret_5", "vol_10"], "spec_hash": "abc123"}
    assert meta["label"] == {"kind": "forward_return", "horizon": 1, "scale": p.label_scale}
    assert meta["train_window"]["first"] == ts[0].isoformat()
    assert meta["model"] == {"name": name, "config": {**model_config(name).__dict__, **params}}
    with pytest.raises(ValueError, match=r"shape \[N, 10, 3\]"):
        b.predict(raw[:, :, :2])


@pytest.mark.parametrize("name", ["ensemble_mean", "ensemble_stack"])
def test_ensembles_end_to_end(spx: pd.DataFrame, tmp_path: Path, name: str) -> None:
    members = [{"name": "cnn", "channels": 4}, {"name": "xgboost", **XGB_SMALL}]
    params: dict[str, Any] = {"members": members, "folds": 2}
    if name == "ensemble_mean":
        params["weights"] = [2.0, 1.0]
    else:
        params["meta"] = {**XGB_SMALL, "last_k": 1}
    spec = TrainSpec(model=name, params=params, window=WINDOW, horizon=1, trainer=FAST)
    res = train_model(spec, spx, None, tmp_path, checkpoint_dir=tmp_path / "ckpt")
    assert res["status"] == "completed"
    b = load_bundle(res["bundle"])
    assert [m["name"] for m in b.meta["members"]] == ["cnn", "xgboost"]
    # The metrics computed in memory before saving equal those of the loaded bundle.
    p = prepare(spec, spx)
    raw = p.X[p.test[:, None] + np.arange(-WINDOW + 1, 1)]
    y = p.y[p.test].astype(np.float64) * p.label_scale
    again = evaluate("regression", b.predict(raw) / p.label_scale, y, label_scale=p.label_scale)
    assert again == {k: v for k, v in res["metrics"]["test"].items() if k != "n"}


def test_train_model_on_real_bars_writes_bundle_and_metrics(
    spx: pd.DataFrame, tmp_path: Path
) -> None:
    spec = TrainSpec(
        model="lstm",
        params={"hidden": 6},
        head="direction",
        window=WINDOW,
        horizon=5,
        embargo=2,
        trainer=TrainerConfig(epochs=2, global_batch_size=64, micro_batch_size=32),
    )
    from _train_frames import sp500_frame

    frame = sp500_frame(horizon=5)
    res = train_model(
        spec, frame, "label", tmp_path, checkpoint_dir=tmp_path / "ckpt", feature_spec_hash="f00d"
    )
    assert res["status"] == "completed" and res["epochs"] == 2
    assert set(res["metrics"]["test"]) == {"mse", "dir_acc", "ic", "n"}
    assert 0.0 <= res["metrics"]["test"]["dir_acc"] <= 1.0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["bundle"] == res["bundle"]
    b = load_bundle(res["bundle"])
    assert b.horizon == 5 and b.meta["features"]["spec_hash"] == "f00d"
    # The recorded training window ends before the validation block starts.
    last_train = pd.Timestamp(b.meta["train_window"]["last"])
    p = prepare(spec, frame)
    assert last_train < pd.Timestamp(p.timestamps[p.val.min()], tz="UTC")
    probs = b.predict_frame(frame)
    assert probs.dropna().between(0, 1).all()


def test_predict_frame_never_looks_ahead(spx: pd.DataFrame, tmp_path: Path) -> None:
    spec = TrainSpec(model="cnn", params={"channels": 4}, window=WINDOW, trainer=FAST)
    res = train_model(spec, spx, None, tmp_path, checkpoint_dir=tmp_path / "ckpt")
    b = load_bundle(res["bundle"])
    base = b.predict_frame(spx)
    t = 400
    future = spx.copy()
    future.loc[t + 1 :, ["ret_1", "ret_5", "vol_10"]] = 9.0  # rewrite everything after t
    moved = b.predict_frame(future)
    pd.testing.assert_series_equal(base.iloc[: t + 1], moved.iloc[: t + 1])
    assert not np.allclose(base.iloc[t + 1 :], moved.iloc[t + 1 :])
    assert base.iloc[: WINDOW - 1].isna().all()  # no full window yet
    assert base[spx["warmup"].to_numpy()].isna().all()


def test_a_failed_save_leaves_nothing(spx: pd.DataFrame, tmp_path: Path) -> None:
    p = prepare(TrainSpec(model="cnn", window=WINDOW), spx)
    ens = model_config("ensemble_mean", {"members": [{"name": "cnn"}]})
    with pytest.raises(ValueError, match="needs its trained members"):
        save_bundle(
            tmp_path / "b",
            model=Member(name="ensemble_mean", config=ens, model=None),
            head="regression",
            window=WINDOW,
            feature_names=p.feature_names,
            scaler=p.scaler,
            label={"kind": "forward_return", "horizon": 1},
        )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="not a model bundle"):
        load_bundle(tmp_path)
