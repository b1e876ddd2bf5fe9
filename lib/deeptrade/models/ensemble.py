"""Ensembles of trained members: a weighted average of scores, or XGBoost stacked on them.

Members are anything with ``scores(x) -> np.ndarray`` (``TorchScorer``, ``XGBModel``, a loaded
bundle's model). Stacking learns from out-of-fold member scores, never from scores on the rows
a member was trained on (``deeptrade.train.stacking`` produces them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from deeptrade.models.heads import Head
from deeptrade.models.xgb import XGBConfig, XGBModel


class Scorer(Protocol):
    def scores(self, x: np.ndarray) -> np.ndarray: ...


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


class WeightedEnsemble:
    """Weighted mean of member scores (log returns, or logits for direction)."""

    def __init__(self, members: Sequence[Scorer], weights: Sequence[float] | None = None) -> None:
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.members, self.weights = list(members), w / w.sum()

    def scores(self, x: np.ndarray) -> np.ndarray:
        return member_scores(self.members, x) @ self.weights


class StackedEnsemble:
    """XGBoost over the member scores of each window."""

    def __init__(self, members: Sequence[Scorer], meta: XGBModel) -> None:
        self.members, self.meta = list(members), meta

    @staticmethod
    def new_meta(cfg: EnsembleConfig, n_members: int, head: Head) -> XGBModel:
        return XGBModel(cfg.meta_config(), n_features=n_members, window=1, head=head)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.meta.scores(member_scores(self.members, x)[:, None, :])


def member_scores(members: Sequence[Scorer], x: np.ndarray) -> np.ndarray:
    """``[N, n_members]`` scores."""
    if not members:
        raise ValueError("ensemble has no members")
    return np.stack([m.scores(x) for m in members], axis=1)
