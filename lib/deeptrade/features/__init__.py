"""Point-in-time features for one (symbol, timeframe) bar series.

Public API (see each module for details):

- `compute_features(bars, *, benchmark_close=None, config=None, backend="cpu")`: batch.
- `FeatureConfig`, `FEATURE_NAMES`, `feature_names(config)`, `warmup_bars(config)`.
- `feature_spec(config)`, `feature_spec_hash(config)`: the contract a model is trained on.
- `StreamingFeatures` (deeptrade.features.streaming): the live calculator.
- `LabelSpec`, `make_labels` (deeptrade.features.labels): training targets (use the future).
- `run_partitions` (deeptrade.features.scale): many partitions with Dask, bounded memory.

Importing this package does not import Dask, cuDF or CuPy.
"""

from typing import Any

# Exports load on first use (PEP 562): the config schema imports ``features.config`` on every
# command, and the kernels behind these names pull in numba.
_EXPORTS = {
    "FeatureConfig": "config",
    "compute_features": "core",
    "LabelSpec": "labels",
    "make_labels": "labels",
    "FEATURE_NAMES": "spec",
    "FEATURE_SET_VERSION": "spec",
    "feature_names": "spec",
    "feature_spec": "spec",
    "feature_spec_hash": "spec",
    "warmup_bars": "spec",
    "StreamingFeatures": "streaming",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name not in _EXPORTS:
        raise AttributeError(f"module 'deeptrade.features' has no attribute {name!r}")
    return getattr(importlib.import_module(f"deeptrade.features.{_EXPORTS[name]}"), name)


__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SET_VERSION",
    "FeatureConfig",
    "LabelSpec",
    "StreamingFeatures",
    "compute_features",
    "feature_names",
    "feature_spec",
    "feature_spec_hash",
    "make_labels",
    "warmup_bars",
]
