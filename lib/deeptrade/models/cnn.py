"""1-D convolutions along time, with growing dilation, pooled over the window."""

from __future__ import annotations

import torch
from torch import nn

from deeptrade.config.models import CNNConfig
from deeptrade.models.base import ScoreHead


class CNN1D(nn.Module):
    """``x [B, L, F] -> score [B]``; pools the mean and the last step of the final block."""

    def __init__(self, cfg: CNNConfig, *, n_features: int, window: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = n_features
        for i in range(cfg.layers):
            d = 2**i
            blocks += [
                nn.Conv1d(
                    c_in, cfg.channels, cfg.kernel, dilation=d, padding=d * (cfg.kernel // 2)
                ),
                nn.GELU(),
                nn.Dropout(cfg.dropout),
            ]
            c_in = cfg.channels
        self.convs = nn.Sequential(*blocks)
        self.head = ScoreHead(2 * cfg.channels, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x.transpose(1, 2))  # [B, C, L]
        return self.head(torch.cat([h.mean(dim=2), h[:, :, -1]], dim=-1))
