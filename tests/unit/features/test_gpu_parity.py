"""GPU backend == CPU backend (<= 1e-6 relative) on real data. Needs a CUDA device."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptrade.features import FEATURE_NAMES, compute_features

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def _need_cuda() -> None:
    cp = pytest.importorskip("cupy")
    pytest.importorskip("numba.cuda")
    if cp.cuda.runtime.getDeviceCount() == 0:
        pytest.skip("no CUDA device")


@pytest.mark.parametrize("series", ["SPX", "AAPL", "ES_1m"])
def test_gpu_matches_cpu(real_series: dict[str, pd.DataFrame], series: str) -> None:
    bars = real_series[series]
    bench = real_series["NDX"]["close"].to_numpy()[: len(bars)]
    cpu = compute_features(bars, benchmark_close=bench, backend="cpu")
    gpu = compute_features(bars, benchmark_close=bench, backend="gpu")
    assert list(gpu.columns) == list(cpu.columns)
    a, b = gpu[list(FEATURE_NAMES)].to_numpy(), cpu[list(FEATURE_NAMES)].to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert (gpu["warmup"] == cpu["warmup"]).all()
