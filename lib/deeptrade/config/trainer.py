"""Trainer config, torch-free so the config schema can import it without loading torch.

It configures ``deeptrade.train.trainer.Trainer``; it lives here because importing that module
loads torch (seconds), and composing a config must stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("ddp", "deepspeed")
MONITORS = {"val_loss": False, "val_mse": False, "val_ic": True, "val_dir_acc": True}
"""Metrics early stopping can watch -> whether higher is better."""


@dataclass(kw_only=True)
class TrainerConfig:
    engine: str = "ddp"
    """ddp (torch DistributedDataParallel) | deepspeed (ZeRO)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage 1, 2 or 3 (engine=deepspeed only)."""
    epochs: int = 20
    """Passes over the training windows."""
    global_batch_size: int = 256
    """Windows per optimizer step over all ranks; fixed whatever the ranks or OOM back-offs."""
    micro_batch_size: int = 64
    """Windows per forward pass on one rank; accumulation = global / (micro × ranks)."""
    lr: float = 1e-3
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: off)."""
    precision: str = "auto"
    """auto (fp32 on CPU, fp16 + loss scaling below compute capability 8.0, bf16 from 8.0) | fp32 | fp16 | bf16."""
    device: str = "auto"
    """auto | cpu | cuda."""
    seed: int = 0
    """Data order and per-rank dropout streams derive from it."""
    monitor: str = "val_loss"
    """Early-stopping metric: val_loss | val_mse | val_ic | val_dir_acc."""
    patience: int = 5
    """Epochs without improvement before stopping (0: never stop early)."""
    min_delta: float = 0.0
    """Smallest change in the monitored metric that counts as an improvement."""
    checkpoint_every: int = 0
    """Also checkpoint every N optimizer steps (0: only at epoch ends and on preemption)."""
    keep_last: int = 2
    """Complete checkpoints kept."""
    eval_batch_size: int = 2048
    """Windows per forward pass during validation."""
    max_steps: int = 0
    """Stop (with a checkpoint) after this many optimizer steps in total (0: no limit)."""

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"trainer.engine={self.engine!r}; use one of {', '.join(ENGINES)}")
        if self.zero_stage not in (1, 2, 3):
            raise ValueError(f"trainer.zero_stage must be 1, 2 or 3, got {self.zero_stage}")
        if self.global_batch_size < 1 or self.micro_batch_size < 1:
            raise ValueError("trainer: global_batch_size and micro_batch_size must be >= 1")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"trainer.global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"micro_batch_size ({self.micro_batch_size})"
            )
        if self.monitor not in MONITORS:
            raise ValueError(f"trainer.monitor={self.monitor!r}; use one of {', '.join(MONITORS)}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"trainer.precision={self.precision!r}; use auto, fp32, fp16 or bf16")
        if self.epochs < 1 or self.keep_last < 1:
            raise ValueError("trainer: epochs and keep_last must be >= 1")
