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

from deeptrade.features.config import FeatureConfig
from deeptrade.features.core import compute_features
from deeptrade.features.labels import LabelSpec, make_labels
from deeptrade.features.spec import (
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    feature_names,
    feature_spec,
    feature_spec_hash,
    warmup_bars,
)
from deeptrade.features.streaming import StreamingFeatures

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
