"""Evaluation metrics (pure) and early stopping."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deeptrade.config.trainer import MONITORS
from deeptrade.models.heads import Head, output

# Metric name -> whether larger is better.


def evaluate(
    head: Head, scores: np.ndarray, y: np.ndarray, *, label_scale: float = 1.0
) -> dict[str, float]:
    """Metrics of raw ``scores`` against labels ``y`` (in the label's own units).

    - ``mse``: of the predicted label (regression); Brier score of P(up) vs 1[y > 0] (direction)
    - ``dir_acc``: share of rows where the predicted direction equals sign(y) (y == 0 counts as down)
    - ``ic``: Spearman rank correlation between scores and y (information coefficient)
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return {"mse": math.nan, "dir_acc": math.nan, "ic": math.nan}
    if head == "regression":
        pred = scores * label_scale
        mse = float(np.mean((pred - y) ** 2))
        up = pred > 0
    else:
        p = output(head, scores)
        mse = float(np.mean((p - (y > 0)) ** 2))
        up = p > 0.5
    dir_acc = float(np.mean(up == (y > 0)))
    ic = math.nan
    if np.ptp(scores) > 0 and np.ptp(y) > 0:
        ic = spearman(scores, y)
    return {"mse": mse, "dir_acc": dir_acc, "ic": ic}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(kw_only=True)
class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement of ``min_delta`` in ``monitor``."""

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor={self.monitor!r}; use one of {', '.join(MONITORS)}")

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; True when it is the best so far."""
        sign = 1.0 if MONITORS[self.monitor] else -1.0
        improved = math.isfinite(value) and (
            self.best is None or sign * (value - self.best) > self.min_delta
        )
        if improved:
            self.best, self.best_epoch, self.bad_epochs = float(value), epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = (
            state["best"],
            state["best_epoch"],
            state["bad_epochs"],
        )
