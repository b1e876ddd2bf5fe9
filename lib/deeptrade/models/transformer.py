"""Transformer encoder over the window with fixed sinusoidal positions."""

from __future__ import annotations

import math

import torch
from torch import nn

from deeptrade.config.models import TransformerConfig
from deeptrade.models.base import ScoreHead


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """``[length, dim]`` sin/cos encodings of Vaswani et al. (2017)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TransformerModel(nn.Module):
    """``x [B, L, F] -> score [B]``. Attention spans the window only (all rows <= t)."""

    pos: torch.Tensor

    def __init__(self, cfg: TransformerConfig, *, n_features: int, window: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(n_features, cfg.d_model)
        # Not a parameter and not saved: it is a pure function of (window, d_model).
        self.register_buffer("pos", sinusoidal_positions(window, cfg.d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = ScoreHead(cfg.d_model, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos[: x.shape[1]].to(x.dtype)
        h = self.encoder(h)
        pooled = h.mean(dim=1) if self.cfg.pool == "mean" else h[:, -1]
        return self.head(pooled)
