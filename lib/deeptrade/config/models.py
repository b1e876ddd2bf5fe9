"""Model configs, torch-free so the config schema can import them without loading torch.

They configure the modules in ``deeptrade.models``; they live here because importing any
module of that package loads torch (seconds), and composing a config must stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class LSTMConfig:
    hidden: int = 64
    """Hidden units per direction."""
    layers: int = 1
    """Stacked LSTM layers."""
    dropout: float = 0.1
    """Dropout between LSTM layers (needs layers > 1) and before the head."""
    attention: bool = True
    """Pool time steps with learned attention weights; else concatenate the end states."""

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(
                f"lstm: hidden ({self.hidden}) and layers ({self.layers}) must be >= 1"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lstm: dropout must be in [0, 1), got {self.dropout}")


@dataclass(kw_only=True)
class TransformerConfig:
    d_model: int = 64
    """Width of the token embeddings."""
    heads: int = 4
    """Attention heads; must divide d_model."""
    layers: int = 2
    """Encoder layers."""
    ff: int = 128
    """Hidden width of each layer's feed-forward block."""
    dropout: float = 0.1
    """Dropout inside the encoder and before the head."""
    pool: str = "mean"
    """How time steps become one vector: mean | last."""

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(
                f"transformer: heads ({self.heads}) must divide d_model ({self.d_model})"
            )
        if self.pool not in ("mean", "last"):
            raise ValueError(f"transformer: pool must be mean or last, got {self.pool!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"transformer: dropout must be in [0, 1), got {self.dropout}")


@dataclass(kw_only=True)
class CNNConfig:
    channels: int = 32
    """Channels of every convolution."""
    kernel: int = 5
    """Kernel size in bars (odd, so 'same' padding is symmetric)."""
    layers: int = 3
    """Convolution blocks; block i has dilation 2**i."""
    dropout: float = 0.1
    """Dropout after each block and before the head."""

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"cnn: kernel must be odd and >= 1, got {self.kernel}")
        if self.channels < 1 or self.layers < 1:
            raise ValueError("cnn: channels and layers must be >= 1")


@dataclass(kw_only=True)
class XGBConfig:
    last_k: int = 5
    """Window rows fed to the trees, newest last (0: the whole window)."""
    n_estimators: int = 500
    """Maximum boosting rounds."""
    max_depth: int = 6
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50
    """Stop when the validation metric has not improved for this many rounds (0: never)."""
    device: str = "auto"
    """auto (cuda when torch sees a GPU) | cpu | cuda."""
    n_jobs: int = 0
    """CPU threads (0: XGBoost's default, all cores)."""

    def __post_init__(self) -> None:
        if self.last_k < 0 or self.n_estimators < 1:
            raise ValueError("xgboost: last_k must be >= 0 and n_estimators >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"xgboost: device must be auto, cpu or cuda, got {self.device!r}")


@dataclass(kw_only=True)
class EnsembleConfig:
    members: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "lstm"}, {"name": "cnn"}]
    )
    """One dict per member: ``name`` (a key of MODELS, not an ensemble) + that model's params."""
    weights: list[float] | None = None
    """ensemble_mean: one weight per member (None: equal)."""
    folds: int = 3
    """ensemble_stack: purged folds over the training rows for out-of-fold member scores."""
    meta: dict[str, Any] = field(default_factory=lambda: {"last_k": 1, "max_depth": 3})
    """ensemble_stack: XGBConfig fields of the stacker (last_k must stay 1)."""

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("ensemble: members is empty; list at least one {name: ...}")
        for i, m in enumerate(self.members):
            if "name" not in m:
                raise ValueError(f"ensemble: member {i} has no 'name' key: {m}")
            if str(m["name"]).startswith("ensemble"):
                raise ValueError(f"ensemble: member {i} is an ensemble; nest models, not ensembles")
        if self.weights is not None:
            if len(self.weights) != len(self.members):
                raise ValueError(
                    f"ensemble: {len(self.weights)} weights for {len(self.members)} members"
                )
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(
                    f"ensemble: weights must be >= 0 with a positive sum: {self.weights}"
                )
        if self.folds < 2:
            raise ValueError(f"ensemble: folds must be >= 2, got {self.folds}")
        if self.meta.get("last_k", 1) != 1:
            raise ValueError("ensemble: meta.last_k must be 1 (the stacker sees one row of scores)")

    def meta_config(self) -> XGBConfig:
        return XGBConfig(**{"last_k": 1, **self.meta})
