"""Training targets. Unlike features, a label looks into the future BY DESIGN.

label[t] is built from close[t] and close[t + horizon]: it is only known `horizon` bars after
t. Anything that trains or evaluates on labels must therefore purge (and embargo) at least
`LabelSpec.horizon` bars between a training and a test period, or the last training labels
overlap the test period's prices (look-ahead through the target).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

LabelKind = Literal["forward_return", "direction"]
KINDS: tuple[str, ...] = ("forward_return", "direction")
LABEL_KINDS = KINDS


@dataclass(kw_only=True)
class LabelSpec:
    """What a model predicts, and how far ahead."""

    kind: LabelKind = "forward_return"
    """forward_return: log(close[t+h] / close[t]); direction: its sign (1.0, 0.0 or -1.0)."""
    horizon: int = 1
    """h, in bars. Also the minimum number of bars training/backtest splits must purge."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"LabelSpec.kind={self.kind!r}: use one of {KINDS}")
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"LabelSpec.horizon={self.horizon!r}: must be an integer >= 1")

    @property
    def purge_bars(self) -> int:
        """Bars to purge between train and test periods (= horizon)."""
        return self.horizon

    @property
    def name(self) -> str:
        return f"{'fwd_log_ret' if self.kind == 'forward_return' else 'direction'}_{self.horizon}"

    def to_dict(self) -> dict[str, Any]:
        """For release bundles; `LabelSpec(**d)` restores it."""
        return dataclasses.asdict(self)


def make_labels(bars: pd.DataFrame, spec: LabelSpec) -> np.ndarray:
    """float64 labels aligned row by row with `bars`; NaN in the last `horizon` rows."""
    if "close" not in bars.columns:
        raise ValueError("bars lack a 'close' column (see deeptrade.data.schema)")
    close = bars["close"].to_numpy(dtype=np.float64)
    if (~np.isfinite(close) | (close <= 0.0)).any():
        row = int(np.argmax(~np.isfinite(close) | (close <= 0.0)))
        raise ValueError(f"bars.close at row {row} is {close[row]!r}; closes must be finite > 0")
    h = spec.horizon
    fwd = np.full(close.shape, np.nan)
    if len(close) > h:
        fwd[:-h] = np.log(close[h:] / close[:-h])
    if spec.kind == "direction":
        fwd = np.sign(fwd)  # NaN stays NaN
    return fwd
