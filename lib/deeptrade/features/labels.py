"""Labels: the training targets. They use the future BY DESIGN, so they live apart from features.

``label[t] = log(close[t + h] / close[t])`` (``forward_return``) or its sign (``direction``).
The last ``h`` rows have no label (NaN). Anything that splits data in time (training splits,
walk-forward windows) must purge ``h`` bars at each boundary: the label of a bar ``h`` bars
before a boundary already looks across it. The horizon is recorded in the features
artifact's manifest for exactly that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LABEL_KINDS = ("forward_return", "direction")


@dataclass(kw_only=True)
class LabelSpec:
    kind: str = "forward_return"
    """forward_return (log return over the horizon) | direction (its sign: 1, 0 or -1)."""
    horizon: int = 1
    """Bars ahead; training and backtests purge by it."""

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise ValueError(f"label kind {self.kind!r}: use one of {', '.join(LABEL_KINDS)}")
        if self.horizon < 1:
            raise ValueError(f"label horizon must be >= 1 bar, got {self.horizon}")


def make_labels(bars: pd.DataFrame, spec: LabelSpec) -> np.ndarray:
    """Labels aligned with ``bars`` rows (float64; NaN where the horizon runs past the end)."""
    close = bars["close"].to_numpy(dtype=np.float64)
    out = np.full(len(close), np.nan)
    h = spec.horizon
    if len(close) > h:
        out[:-h] = np.log(close[h:] / close[:-h])
    if spec.kind == "direction":
        out = np.where(np.isnan(out), np.nan, np.sign(out))
    return out
