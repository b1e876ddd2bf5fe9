"""Shared pieces of the neural models: the scoring head and batched inference."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ScoreHead(nn.Sequential):
    """Pooled representation -> one score per window."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__(nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(h).squeeze(-1)


@torch.inference_mode()
def torch_scores(
    module: nn.Module, x: np.ndarray, *, batch_size: int = 4096, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Raw scores of ``module`` for scaled windows ``x [N, L, F]`` (float64 [N])."""
    module.eval()
    dtype = next(module.parameters()).dtype
    out = [
        module(torch.as_tensor(x[i : i + batch_size], device=device, dtype=dtype)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    if not out:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(out).numpy().astype(np.float64)


class TorchScorer:
    """A trained torch module behind the ``scores(x)`` interface the ensembles use."""

    def __init__(self, module: nn.Module, *, device: str | torch.device = "cpu") -> None:
        self.module, self.device = module, device

    def scores(self, x: np.ndarray) -> np.ndarray:
        return torch_scores(self.module, x, device=self.device)
