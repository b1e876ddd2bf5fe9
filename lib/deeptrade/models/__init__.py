"""Models: pure modules (no I/O, no parallelism) selected by name through ``MODELS``.

Neural models map windows ``[B, L, F]`` to one score per window; see ``heads`` for what a
score means. Names map to classes here, in code, never through ``_target_`` strings.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from deeptrade.models.cnn import CNN1D, CNNConfig
from deeptrade.models.ensemble import EnsembleConfig, StackedEnsemble, WeightedEnsemble
from deeptrade.models.heads import HEADS, Head
from deeptrade.models.lstm import BiLSTM, LSTMConfig
from deeptrade.models.transformer import TransformerConfig, TransformerModel
from deeptrade.models.xgb import XGBConfig, XGBModel

MODELS: dict[str, type] = {
    "lstm": BiLSTM,
    "transformer": TransformerModel,
    "cnn": CNN1D,
    "xgboost": XGBModel,
    "ensemble_mean": WeightedEnsemble,
    "ensemble_stack": StackedEnsemble,
}
"""Model name -> class."""

CONFIGS: dict[str, type] = {
    "lstm": LSTMConfig,
    "transformer": TransformerConfig,
    "cnn": CNNConfig,
    "xgboost": XGBConfig,
    "ensemble_mean": EnsembleConfig,
    "ensemble_stack": EnsembleConfig,
}
"""Model name -> its ``@dataclass(kw_only=True)`` config."""

NEURAL = ("lstm", "transformer", "cnn")
"""Models trained by ``deeptrade.train.trainer.Trainer``."""


def _check_name(name: str) -> None:
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}.{hint}")


def model_config(name: str, params: dict[str, Any] | None = None) -> Any:
    """The config dataclass of model ``name`` from a plain dict; unknown keys raise."""
    _check_name(name)
    cls = CONFIGS[name]
    params = dict(params or {})
    valid = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in params if k not in valid]
    if unknown:
        listing = ", ".join(
            f"{f.name}={f.default!r}" if f.default is not dataclasses.MISSING else f.name
            for f in valid.values()
        )
        raise ValueError(f"model {name}: unknown parameter(s) {unknown}; valid: {listing}")
    return cls(**params)


def build_model(name: str, cfg: Any, *, n_features: int, window: int, head: Head) -> Any:
    """An untrained model. Neural models are ``nn.Module``s; ``xgboost`` an ``XGBModel``."""
    _check_name(name)
    if name in NEURAL:
        return MODELS[name](cfg, n_features=n_features, window=window)
    if name == "xgboost":
        return XGBModel(cfg, n_features=n_features, window=window, head=head)
    raise ValueError(f"{name} is assembled from trained members by deeptrade.train, not built")


__all__ = [
    "CNN1D",
    "CONFIGS",
    "HEADS",
    "MODELS",
    "NEURAL",
    "BiLSTM",
    "CNNConfig",
    "EnsembleConfig",
    "Head",
    "LSTMConfig",
    "StackedEnsemble",
    "TransformerConfig",
    "TransformerModel",
    "WeightedEnsemble",
    "XGBConfig",
    "XGBModel",
    "build_model",
    "model_config",
]
