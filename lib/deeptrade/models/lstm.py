"""Bidirectional LSTM over the window, pooled by learned attention or by the end states."""

from __future__ import annotations

import torch
from torch import nn

from deeptrade.config.models import LSTMConfig
from deeptrade.models.base import ScoreHead


class BiLSTM(nn.Module):
    """``x [B, L, F] -> score [B]``."""

    def __init__(self, cfg: LSTMConfig, *, n_features: int, window: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(
            n_features,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        width = 2 * cfg.hidden
        # No bias: softmax ignores a shift, so a bias would get zero gradient forever.
        self.attn = nn.Linear(width, 1, bias=False) if cfg.attention else None
        self.head = ScoreHead(width, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # [B, L, 2H]
        if self.attn is not None:
            w = torch.softmax(self.attn(h), dim=1)  # [B, L, 1]
            pooled = (w * h).sum(dim=1)
        else:
            # The forward direction has read the whole window at the last step, the backward
            # direction at the first.
            hid = self.cfg.hidden
            pooled = torch.cat([h[:, -1, :hid], h[:, 0, hid:]], dim=-1)
        return self.head(pooled)
