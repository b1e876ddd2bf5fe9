"""Windows over feature arrays, purged time splits, and the training-only scaler.

A sample is the window ``X[t - window + 1 : t + 1]`` ending at row ``t`` with label ``y[t]``;
samples are identified by their end row only, so nothing is copied per sample (a batch is one
gather). ``X`` may be a memory-mapped ``.npy``.

Labels look ahead: ``y[t] = log(close[t + h] / close[t])`` uses bars up to ``t + h``. A training
sample therefore leaks into a later block unless ``t + h`` is before that block starts; the
splits purge such samples and can embargo a further gap after each held-out block.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

RESERVED_COLUMNS = ("timestamp", "warmup", "label", "close")
"""Columns of a features frame that are never model inputs."""


# ---------------------------------------------------------------------------------- scaler


@dataclass(kw_only=True)
class Scaler:
    """Per-feature standardisation ``(x - mean) / std``, fit on training rows only."""

    mean: np.ndarray
    """float64 [n_features]."""
    std: np.ndarray
    """float64 [n_features]; constant features get 1 so they map to 0 instead of NaN."""

    @classmethod
    def fit(cls, X: np.ndarray, rows: np.ndarray) -> Scaler:
        if len(rows) == 0:
            raise ValueError("cannot fit the scaler on zero training rows; provide more data")
        sub = np.asarray(X[rows], dtype=np.float64)
        mean = np.nanmean(sub, axis=0)
        std = np.nanstd(sub, axis=0)
        bad = ~np.isfinite(mean)
        if bad.any():
            raise ValueError(
                f"feature columns {np.flatnonzero(bad).tolist()} are NaN on every training row; "
                "drop them from the feature list"
            )
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale (any leading shape, features last) to float32; NaN inputs become 0 (the mean)."""
        out = ((x - self.mean) / self.std).astype(np.float32)
        return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Scaler:
        return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64))


# ---------------------------------------------------------------------------------- dataset


class WindowDataset:
    """Windows of ``window`` rows of ``X`` ending at each of ``ends``, with labels ``y[ends]``.

    ``X`` is a contiguous 2-D float32 array ``[rows, features]`` (or a read-only memmap) and is
    never copied; ``__getitem__`` returns a view, ``batch`` gathers one scaled batch.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        ends: np.ndarray,
        *,
        window: int,
        scaler: Scaler | None = None,
    ) -> None:
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D [rows, features], got shape {X.shape}")
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) and (ends.min() < window - 1 or ends.max() >= len(X)):
            raise ValueError(
                f"window ends must lie in [{window - 1}, {len(X) - 1}] for window={window}"
            )
        self.X, self.y, self.ends, self.window, self.scaler = X, y, ends, window, scaler
        self._offsets = np.arange(-window + 1, 1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.float32]:
        t = int(self.ends[i])
        return self.X[t - self.window + 1 : t + 1], np.float32(self.y[t])

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``idx`` (positions in this dataset) as ``(x [B, window, F] float32, y [B])``."""
        rows = self.ends[idx][:, None] + self._offsets
        x = self.X[rows]
        if self.scaler is not None:
            x = self.scaler.transform(x)
        return np.ascontiguousarray(x, dtype=np.float32), self.y[self.ends[idx]].astype(np.float32)

    def labels(self) -> np.ndarray:
        return np.asarray(self.y[self.ends], dtype=np.float64)


def valid_ends(
    n_rows: int, *, window: int, warmup: np.ndarray | None, y: np.ndarray | None
) -> np.ndarray:
    """Rows that may end a window: a full window behind them, not in warm-up, label known."""
    ok = np.zeros(n_rows, dtype=bool)
    ok[window - 1 :] = True
    if warmup is not None:
        ok &= ~np.asarray(warmup, dtype=bool)
    if y is not None:
        ok &= np.isfinite(np.asarray(y, dtype=np.float64))
    return np.flatnonzero(ok)


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Open a ``.npy`` feature array memory-mapped read-only (nothing is read until used)."""
    return np.load(path, mmap_mode="r")


# ---------------------------------------------------------------------------------- splits


@dataclass(kw_only=True)
class Splits:
    """Row indices (window ends) of each block, time-ordered: train < val < test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    starts: tuple[int, int, int]
    """First row of each block before purging (the cut points)."""

    def restrict(self, allowed: np.ndarray) -> Splits:
        """Keep only rows in ``allowed`` (e.g. valid window ends)."""
        return Splits(
            train=np.intersect1d(self.train, allowed),
            val=np.intersect1d(self.val, allowed),
            test=np.intersect1d(self.test, allowed),
            starts=self.starts,
        )


def purged_splits(
    n_or_timestamps: int | np.ndarray | pd.Series | pd.DatetimeIndex,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    horizon: int,
    embargo: int = 0,
    cuts: Sequence[pd.Timestamp] | None = None,
) -> Splits:
    """Time-ordered train/validation/test rows, purged by the label horizon and embargoed.

    Blocks are contiguous in time. A sample at row ``t`` of one block is dropped when its label
    window ``[t, t + horizon]`` reaches the next block (purge), and the first ``embargo`` rows
    after each held-out block (validation, test) are dropped from whatever follows it.

    ``n_or_timestamps`` is the row count, or the rows' sorted timestamps; with timestamps,
    ``cuts`` (the first timestamps of validation and test) can replace ``fractions`` so that
    several series (symbols) are cut at the same instants.
    """
    if isinstance(n_or_timestamps, int | np.integer):
        n, ts = int(n_or_timestamps), None
    else:
        ts = pd.DatetimeIndex(n_or_timestamps)
        n = len(ts)
        if not ts.is_monotonic_increasing:
            raise ValueError("timestamps must be sorted ascending; sort the frame by timestamp")
    if horizon < 0 or embargo < 0:
        raise ValueError(f"horizon ({horizon}) and embargo ({embargo}) must be >= 0")
    if cuts is not None:
        if ts is None:
            raise ValueError("cuts need timestamps; pass the timestamp column, not a row count")
        if len(cuts) != 2:
            raise ValueError(f"cuts must be (val_start, test_start), got {list(cuts)}")
        v, te = (int(ts.searchsorted(pd.Timestamp(c), side="left")) for c in cuts)
    else:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or fractions[0] <= 0:
            raise ValueError(
                f"fractions must be 3 non-negative numbers (train > 0), got {fractions}"
            )
        total = float(sum(fractions))
        v = round(n * fractions[0] / total)
        te = round(n * (fractions[0] + fractions[1]) / total)
    if not 0 <= v <= te <= n or (cuts is None and v == 0):
        raise ValueError(f"bad cut points val={v}, test={te} for {n} rows")
    rows = np.arange(n, dtype=np.int64)
    # A label window [t, t + h] must end before the next block starts: t + h < start.
    train = rows[(rows < v) & (rows + horizon < v)]
    val = rows[(rows >= v) & (rows < te) & (rows + horizon < te)]
    # Embargo after the validation block: serial correlation makes the first rows after it
    # nearly copies of its last ones.
    test = rows[(rows >= te + (embargo if te > v else 0))]
    return Splits(train=train, val=val, test=test, starts=(0, v, te))


def purged_kfold(
    n: int, k: int, *, horizon: int, embargo: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K contiguous folds; for each, ``(train_rows, held_out_rows)`` purged and embargoed.

    Training rows before the held-out block are dropped when their label window reaches it;
    training rows after it are dropped while their label window overlaps the held-out labels
    (which look ``horizon`` rows past the block's end), and for ``embargo`` rows more.
    """
    if k < 2 or k > n:
        raise ValueError(f"k must be in [2, n={n}], got {k}")
    bounds = np.linspace(0, n, k + 1).round().astype(np.int64)
    rows = np.arange(n, dtype=np.int64)
    folds = []
    for lo, hi in itertools.pairwise(bounds.tolist()):
        before = rows[(rows < lo) & (rows + horizon < lo)]
        after = rows[rows >= hi + horizon + embargo]
        folds.append((np.concatenate([before, after]), rows[lo:hi]))
    return folds


# ---------------------------------------------------------------------------------- frames


@dataclass(kw_only=True)
class SeriesArrays:
    """One series (symbol × timeframe) as arrays ready for windowing."""

    X: np.ndarray
    """float32 [rows, features], C-contiguous."""
    y: np.ndarray
    """float32 [rows] label; NaN where unknown."""
    timestamps: pd.DatetimeIndex
    warmup: np.ndarray
    """bool [rows]."""


def feature_columns(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns of a features frame that are model inputs, in frame order."""
    skip = set(RESERVED_COLUMNS) | set(exclude)
    return [
        c
        for c in frame.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


def frame_to_arrays(
    frame: pd.DataFrame,
    labels: pd.Series | np.ndarray | str | None,
    feature_names: Sequence[str],
) -> SeriesArrays:
    """Check a features frame and turn it into arrays.

    ``labels``: a column name of ``frame``, an array aligned with its rows, a Series indexed
    by timestamp (aligned by timestamp; missing ones become NaN), or None for column ``label``.
    """
    if "timestamp" not in frame.columns:
        raise ValueError(
            "features frame has no 'timestamp' column; pass the features artifact frame"
        )
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise ValueError(
            f"features frame lacks columns {missing}; it has {list(frame.columns)}. "
            "Train with the feature set the bundle expects."
        )
    ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns")
    if not ts.is_monotonic_increasing or ts.has_duplicates:
        raise ValueError("features frame timestamps must be strictly increasing; sort and dedupe")
    if labels is None:
        labels = "label"
    if isinstance(labels, str):
        if labels not in frame.columns:
            raise ValueError(f"no label column {labels!r} in the features frame; pass labels=")
        y = frame[labels].to_numpy(np.float64)
    elif isinstance(labels, pd.Series) and isinstance(labels.index, pd.DatetimeIndex):
        y = labels.reindex(ts).to_numpy(np.float64)
    else:
        y = np.asarray(labels, dtype=np.float64)
        if len(y) != len(frame):
            raise ValueError(f"labels have {len(y)} rows, features {len(frame)}; align them first")
    X = np.ascontiguousarray(frame[list(feature_names)].to_numpy(np.float32))
    warm = (
        frame["warmup"].to_numpy(bool) if "warmup" in frame.columns else np.zeros(len(frame), bool)
    )
    return SeriesArrays(X=X, y=y.astype(np.float32), timestamps=ts, warmup=warm)
