"""Ensembles of trained members: a weighted average of scores, or XGBoost stacked on them.

Members are anything with ``scores(x) -> np.ndarray`` (``TorchScorer``, ``XGBModel``, a loaded
bundle's model). Stacking learns from out-of-fold member scores, never from scores on the rows
a member was trained on (``deeptrade.train.stacking`` produces them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from deeptrade.config.models import EnsembleConfig
from deeptrade.models.heads import Head
from deeptrade.models.xgb import XGBModel


class Scorer(Protocol):
    def scores(self, x: np.ndarray) -> np.ndarray: ...


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
