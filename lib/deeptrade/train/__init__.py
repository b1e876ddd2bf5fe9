"""Training: windows and purged splits, one trainer over DDP or DeepSpeed, model bundles.

The job-facing entry is ``train_model``; backtest and live read models with ``load_bundle``.
"""

from deeptrade.train.api import TrainSpec, prepare, train_model
from deeptrade.train.bundle import Bundle, Member, load_bundle, save_bundle
from deeptrade.train.data import Scaler, WindowDataset, purged_kfold, purged_splits
from deeptrade.train.dist import DistEnv, expand_nodelist, pick_precision
from deeptrade.train.trainer import PreemptionHandler, Trainer, TrainerConfig, TrainResult

__all__ = [
    "Bundle",
    "DistEnv",
    "Member",
    "PreemptionHandler",
    "Scaler",
    "TrainResult",
    "TrainSpec",
    "Trainer",
    "TrainerConfig",
    "WindowDataset",
    "expand_nodelist",
    "load_bundle",
    "pick_precision",
    "prepare",
    "purged_kfold",
    "purged_splits",
    "save_bundle",
    "train_model",
]
