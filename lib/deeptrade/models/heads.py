"""What a model's single output means and how it is trained.

Every model returns one raw score per window. ``regression`` scores are the predicted label
(a log return, in the label's training scale); ``direction`` scores are logits of
P(label > 0). ``output`` turns scores into what callers consume.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Head = Literal["regression", "direction"]
HEADS: tuple[Head, ...] = ("regression", "direction")


def check_head(head: str) -> Head:
    if head not in HEADS:
        raise ValueError(f"head={head!r}; use one of {', '.join(HEADS)}")
    return head  # type: ignore[return-value]


def loss_fn(head: Head, score: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss over the batch: MSE for regression, BCE on the sign for direction."""
    score = score.float()
    if head == "regression":
        return F.mse_loss(score, y)
    return F.binary_cross_entropy_with_logits(score, (y > 0).float())


def output(head: Head, score: np.ndarray) -> np.ndarray:
    """Scores to outputs: predicted label (regression) or P(label > 0) (direction)."""
    score = np.asarray(score, dtype=np.float64)
    if head == "regression":
        return score
    return 1.0 / (1.0 + np.exp(-score))
