"""Windows without copies, purged + embargoed splits, and a scaler that never sees the future."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeptrade.train import TrainSpec, prepare
from deeptrade.train.data import (
    Scaler,
    WindowDataset,
    frame_to_arrays,
    purged_kfold,
    purged_splits,
    valid_ends,
)


def test_window_is_a_view_and_batch_gathers_the_same_rows(tmp_path: Path) -> None:
    X = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    y = np.arange(50, dtype=np.float32)
    np.save(tmp_path / "x.npy", X)
    Xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ds = WindowDataset(Xm, y, np.array([9, 20, 49]), window=10)
    w, label = ds[1]
    assert np.shares_memory(w, Xm) and w.shape == (10, 3)
    np.testing.assert_array_equal(w, X[11:21])
    assert label == 20
    xb, yb = ds.batch(np.array([0, 2]))
    np.testing.assert_array_equal(xb, np.stack([X[0:10], X[40:50]]))
    np.testing.assert_array_equal(yb, [9, 49])


def test_window_ends_exclude_warmup_nan_labels_and_short_history() -> None:
    warm = np.zeros(20, bool)
    warm[:6] = True
    y = np.ones(20)
    y[-2:] = np.nan
    y[10] = np.nan
    ends = valid_ends(20, window=4, warmup=warm, y=y)
    assert ends.tolist() == [6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17]
    with pytest.raises(ValueError, match="window ends"):
        WindowDataset(np.zeros((20, 2), np.float32), y, np.array([2]), window=4)


@pytest.mark.parametrize("horizon", [0, 1, 5, 17])
@pytest.mark.parametrize("embargo", [0, 3, 10])
def test_no_training_label_window_reaches_validation_or_test(horizon: int, embargo: int) -> None:
    n = 500
    sp = purged_splits(n, (0.6, 0.2, 0.2), horizon=horizon, embargo=embargo)
    _, v, te = sp.starts
    held_out = np.r_[sp.val, sp.test]
    # Every row a training label reads ([t, t + h]) lies before the first held-out row.
    assert (sp.train + horizon < held_out.min()).all()
    assert (sp.train + horizon < v).all()
    # Validation labels do not read test rows either.
    assert (sp.val + horizon < te).all()
    # The embargo after the validation block.
    assert sp.test.min() == te + embargo
    # Nothing is dropped beyond the purge and the embargo.
    assert len(sp.train) == v - horizon and len(sp.val) == te - v - horizon
    assert len(np.intersect1d(sp.train, sp.val)) == 0 and len(np.intersect1d(sp.val, sp.test)) == 0


def test_splits_cut_at_timestamps() -> None:
    ts = pd.date_range("2021-01-01", periods=100, freq="D", tz="UTC")
    sp = purged_splits(ts, horizon=2, cuts=(ts[60], ts[80]))
    assert sp.starts == (0, 60, 80) and sp.train.max() == 57 and sp.val.max() == 77
    with pytest.raises(ValueError, match="sorted"):
        purged_splits(ts[::-1], horizon=1)


@pytest.mark.parametrize(("horizon", "embargo"), [(0, 0), (3, 0), (3, 5)])
def test_purged_kfold_train_rows_never_overlap_held_out_labels(horizon: int, embargo: int) -> None:
    n = 120
    for train, held in purged_kfold(n, 4, horizon=horizon, embargo=embargo):
        lo, hi = held.min(), held.max()
        before, after = train[train < lo], train[train > hi]
        assert (before + horizon < lo).all()
        # Held-out labels read up to hi + horizon; training rows start after that + embargo.
        assert (after > hi + horizon + embargo).all() if len(after) else True
        assert len(np.intersect1d(train, held)) == 0


def test_scaler_ignores_everything_after_the_training_rows(frame: pd.DataFrame) -> None:
    spec = TrainSpec(model="cnn", window=8, horizon=1)
    base = prepare(spec, frame)
    # Perturb the future (validation + test rows): the scaler and the training windows
    # must not move.
    future = frame.copy()
    cols = ["ret_1", "ret_5", "vol_10"]
    first_val = int(base.val.min())
    future.loc[first_val:, cols] = future.loc[first_val:, cols] * 100 + 7
    moved = prepare(spec, future)
    np.testing.assert_array_equal(base.scaler.mean, moved.scaler.mean)
    np.testing.assert_array_equal(base.scaler.std, moved.scaler.std)
    np.testing.assert_array_equal(base.train, moved.train)
    xa, ya = base.dataset(base.train, 8).batch(np.arange(len(base.train)))
    xb, yb = moved.dataset(moved.train, 8).batch(np.arange(len(moved.train)))
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_scaler_standardises_training_rows() -> None:
    X = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 0.0]], dtype=np.float32)
    s = Scaler.fit(X, np.array([0, 1]))
    np.testing.assert_allclose(s.mean, [2.0, 5.0])
    np.testing.assert_allclose(s.std, [1.0, 1.0])  # constant column -> std 1, not 0
    np.testing.assert_allclose(s.transform(X[:2]), [[-1, 0], [1, 0]])
    assert Scaler.from_dict(s.to_dict()).to_dict() == s.to_dict()


def test_several_series_are_cut_at_the_same_instants(frame: pd.DataFrame) -> None:
    later = frame.iloc[100:].reset_index(drop=True)
    p = prepare(TrainSpec(model="cnn", window=8, horizon=1), [frame, later])
    ts = p.timestamps
    assert ts[p.train].max() < ts[p.val].min() and ts[p.val].max() < ts[p.test].min()
    # No window crosses from one series into the next.
    assert ((p.train < len(frame)) | (p.train >= len(frame) + 8 - 1)).all()


def test_frame_errors_say_how_to_fix(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        frame_to_arrays(frame, None, ["ret_1", "nope"])
    with pytest.raises(ValueError, match="strictly increasing"):
        frame_to_arrays(frame.iloc[::-1], None, ["ret_1"])
    with pytest.raises(ValueError, match="no label column"):
        frame_to_arrays(frame.drop(columns="label"), None, ["ret_1"])
    shifted = pd.Series(frame["label"].to_numpy(), index=pd.DatetimeIndex(frame["timestamp"]))
    arr = frame_to_arrays(frame, shifted, ["ret_1"])
    np.testing.assert_array_equal(arr.y, frame["label"].to_numpy(np.float32))


def test_features_nan_on_all_training_rows_are_dropped_or_refused(frame: pd.DataFrame) -> None:
    f = frame.assign(rel_ret=np.nan)  # e.g. a benchmark-relative feature without a benchmark
    with pytest.warns(UserWarning, match=r"dropping features \['rel_ret'\]"):
        p = prepare(TrainSpec(model="cnn", window=8), f)
    assert p.feature_names == ["ret_1", "ret_5", "vol_10"] and p.X.shape[1] == 3
    with pytest.raises(ValueError, match=r"\['rel_ret'\] are NaN on every training row"):
        prepare(TrainSpec(model="cnn", window=8, features=["ret_1", "rel_ret"]), f)
