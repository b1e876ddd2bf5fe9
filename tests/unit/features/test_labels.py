"""Labels look into the future by design: shape, NaN tail, values, purge horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptrade.features import LabelSpec, make_labels


def test_forward_return_and_direction(daily: dict[str, pd.DataFrame]) -> None:
    bars = daily["MSFT"].iloc[:300].reset_index(drop=True)
    c = bars["close"].to_numpy()
    for h in (1, 5, 20):
        spec = LabelSpec(kind="forward_return", horizon=h)
        y = make_labels(bars, spec)
        assert y.shape == (len(bars),) and y.dtype == np.float64
        assert np.isnan(y[-h:]).all() and np.isfinite(y[:-h]).all()
        np.testing.assert_array_equal(y[:-h], np.log(c[h:] / c[:-h]))
        assert spec.purge_bars == h
        d = make_labels(bars, LabelSpec(kind="direction", horizon=h))
        assert np.isnan(d[-h:]).all()
        np.testing.assert_array_equal(d[:-h], np.sign(y[:-h]))
    assert LabelSpec(**LabelSpec(horizon=3).to_dict()) == LabelSpec(horizon=3)


def test_labels_shorter_than_horizon_and_validation(daily: dict[str, pd.DataFrame]) -> None:
    bars = daily["IBM"].iloc[:3]
    assert np.isnan(make_labels(bars, LabelSpec(horizon=5))).all()
    with pytest.raises(ValueError, match="kind"):
        LabelSpec(kind="sign")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="horizon"):
        LabelSpec(horizon=0)
