"""``train_model``: features + labels in, a model bundle and metrics out.

Call it in every rank (single process, torchrun, or Slurm ``srun`` with one task per GPU): ranks
come from the environment, every rank builds the same splits, neural models train with the
configured engine, and rank 0 alone writes the bundle and the metrics.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as tdist

from deeptrade.io.atomic import atomic_write_text
from deeptrade.models import NEURAL, build_model, model_config
from deeptrade.models.base import TorchScorer
from deeptrade.models.ensemble import (
    EnsembleConfig,
    StackedEnsemble,
    WeightedEnsemble,
    member_scores,
)
from deeptrade.models.heads import check_head
from deeptrade.models.xgb import XGBModel
from deeptrade.train.bundle import ENSEMBLES, Member, save_bundle
from deeptrade.train.data import (
    Scaler,
    SeriesArrays,
    WindowDataset,
    feature_columns,
    frame_to_arrays,
    purged_kfold,
    purged_splits,
    valid_ends,
)
from deeptrade.train.dist import DistEnv, pick_device, process_group
from deeptrade.train.metrics import evaluate
from deeptrade.train.trainer import FaultHook, StepHook, Trainer, TrainerConfig, TrainResult

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TrainSpec:
    """What to train on which data; ``trainer`` says how."""

    model: str = "lstm"
    """A key of ``deeptrade.models.MODELS``: lstm | transformer | cnn | xgboost | ensemble_mean | ensemble_stack."""
    params: dict[str, Any] = field(default_factory=dict)
    """Fields of the model's config (``deeptrade.models.CONFIGS[model]``); unknown keys fail."""
    head: str = "regression"
    """regression (predict the label) | direction (P(label > 0))."""
    window: int = 60
    """Bars per input window, the newest last."""
    horizon: int = 1
    """Label horizon in bars (label at t uses close[t + horizon]); splits are purged by it."""
    label_kind: str = "forward_return"
    """Label definition recorded in the bundle."""
    fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    """Train / validation / test shares of the time range, in time order."""
    embargo: int = 0
    """Bars dropped after each held-out block, on top of the purge."""
    features: list[str] = field(default_factory=list)
    """Feature columns in order (empty: every numeric column but timestamp/warmup/label/close)."""
    scale_label: bool = True
    """Regression: train on label / std(training labels); predictions are scaled back."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if isinstance(self.trainer, dict):
            self.trainer = TrainerConfig(**self.trainer)
        check_head(self.head)
        model_config(self.model, self.params)  # fails early on unknown models / parameters
        if self.window < 1 or self.horizon < 0 or self.embargo < 0:
            raise ValueError("train: window must be >= 1, horizon and embargo >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainSpec:
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in valid]
        if unknown:
            hints = {k: difflib.get_close_matches(k, valid, n=1) for k in unknown}
            raise ValueError(f"unknown train spec keys {hints}; valid: {', '.join(valid)}")
        return cls(**d)


# ---------------------------------------------------------------------------------- data


@dataclass(kw_only=True)
class Prepared:
    feature_names: list[str]
    X: np.ndarray
    y: np.ndarray
    """Labels in training units (divided by ``label_scale``)."""
    label_scale: float
    scaler: Scaler
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    timestamps: np.ndarray
    """Timestamp of every row of X (for the training window)."""

    def dataset(self, ends: np.ndarray, window: int) -> WindowDataset:
        return WindowDataset(self.X, self.y, ends, window=window, scaler=self.scaler)


def prepare(
    spec: TrainSpec,
    features: pd.DataFrame | Sequence[pd.DataFrame],
    labels: Any = None,
) -> Prepared:
    """Arrays, purged splits (cut at the same instants for every series), scaler, label scale."""
    frames = [features] if isinstance(features, pd.DataFrame) else list(features)
    if not frames:
        raise ValueError("no features frames given")
    label_list = labels if isinstance(labels, list | tuple) else [labels] * len(frames)
    if len(label_list) != len(frames):
        raise ValueError(f"{len(label_list)} label sets for {len(frames)} features frames")
    names = list(spec.features) or feature_columns(frames[0])
    if not names:
        raise ValueError("no feature columns found; list them in features= or check the frame")
    series: list[SeriesArrays] = [
        frame_to_arrays(f, lab, names) for f, lab in zip(frames, label_list, strict=True)
    ]

    # Cut every series at the same instants so no symbol trains on a period another validates on.
    union = pd.DatetimeIndex(np.unique(np.concatenate([s.timestamps.asi8 for s in series])))
    union = union.tz_localize(series[0].timestamps.tz)
    fr, n_ts = spec.fractions, len(union)
    if len(fr) != 3 or min(fr) < 0 or fr[0] <= 0:
        raise ValueError(f"fractions must be 3 non-negative shares (train > 0), got {fr}")

    def cut(share: float) -> pd.Timestamp:
        i = round(n_ts * share / float(sum(fr)))
        return union[i] if i < n_ts else union[-1] + pd.Timedelta(1, "ns")

    cuts = (cut(fr[0]), cut(fr[0] + fr[1]))

    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    offset = 0
    for s in series:
        ok = valid_ends(len(s.X), window=spec.window, warmup=s.warmup, y=s.y)
        sp = purged_splits(
            s.timestamps, horizon=spec.horizon, embargo=spec.embargo, cuts=cuts
        ).restrict(ok)
        for k in parts:
            parts[k].append(getattr(sp, k) + offset)
        offset += len(s.X)
    train, val, test = (np.concatenate(parts[k]) for k in ("train", "val", "test"))
    if len(train) == 0:
        raise ValueError(
            f"no training windows: {offset} rows, window {spec.window}, horizon {spec.horizon}; "
            "provide more history or shorten the window"
        )
    X = np.concatenate([s.X for s in series]) if len(series) > 1 else series[0].X
    y = np.concatenate([s.y for s in series]) if len(series) > 1 else series[0].y
    warm = np.concatenate([s.warmup for s in series])
    timestamps = np.concatenate([s.timestamps.asi8 for s in series])

    # Scaler: rows inside any training window, warm-up rows excluded.
    covered = np.zeros(len(X) + 1, dtype=np.int64)
    np.add.at(covered, train - spec.window + 1, 1)
    np.add.at(covered, train + 1, -1)
    rows = np.flatnonzero((np.cumsum(covered[:-1]) > 0) & ~warm)
    dead = np.isnan(X[rows]).all(axis=0) if len(rows) else np.zeros(len(names), bool)
    if dead.any():
        dead_names = [n for n, d in zip(names, dead, strict=True) if d]
        if spec.features:
            raise ValueError(
                f"features {dead_names} are NaN on every training row (e.g. a benchmark-"
                "relative feature without a benchmark); remove them from features="
            )
        warnings.warn(f"dropping features {dead_names}: NaN on every training row", stacklevel=2)
        names = [n for n, d in zip(names, dead, strict=True) if not d]
        X = np.ascontiguousarray(X[:, ~dead])
    scaler = Scaler.fit(X, rows)

    scale = 1.0
    if spec.head == "regression" and spec.scale_label:
        sd = float(np.std(y[train].astype(np.float64)))
        scale = sd if sd > 0 else 1.0
    return Prepared(
        feature_names=names,
        X=X,
        y=(y / scale).astype(np.float32),
        label_scale=scale,
        scaler=scaler,
        train=train,
        val=val,
        test=test,
        timestamps=timestamps,
    )


# ---------------------------------------------------------------------------------- training


@dataclass(kw_only=True)
class _Ctx:
    spec: TrainSpec
    data: Prepared
    env: DistEnv
    checkpoint_dir: Path
    metrics_path: Path | None
    preempt: threading.Event | None
    fault_hook: FaultHook | None
    step_hook: StepHook | None


def _train_neural(
    ctx: _Ctx,
    name: str,
    cfg: Any,
    train: np.ndarray,
    val: np.ndarray,
    ckpt_dir: Path,
    metrics_path: Path | None,
) -> tuple[torch.nn.Module, TrainResult]:
    spec, d = ctx.spec, ctx.data
    # Same initial weights on every rank (DDP would broadcast them anyway; DeepSpeed does not).
    torch.manual_seed(spec.trainer.seed)
    module = build_model(
        name, cfg, n_features=len(d.feature_names), window=spec.window, head=check_head(spec.head)
    )
    trainer = Trainer(
        module,
        spec.trainer,
        head=check_head(spec.head),
        train=d.dataset(train, spec.window),
        val=d.dataset(val, spec.window),
        checkpoint_dir=ckpt_dir,
        env=ctx.env,
        metrics_path=metrics_path,
        label_scale=d.label_scale,
        preempt=ctx.preempt,
        fault_hook=ctx.fault_hook,
        step_hook=ctx.step_hook,
    )
    result = trainer.run()
    best = build_model(
        name, cfg, n_features=len(d.feature_names), window=spec.window, head=check_head(spec.head)
    )
    if result.status != "preempted":
        best.load_state_dict(trainer.best_state_dict())
    return best.eval(), result


def _windows(d: Prepared, ends: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    return d.dataset(ends, window).batch(np.arange(len(ends)))


def _train_xgb(ctx: _Ctx, cfg: Any, train: np.ndarray, val: np.ndarray) -> XGBModel:
    spec, d = ctx.spec, ctx.data
    model = build_model(
        "xgboost",
        cfg,
        n_features=len(d.feature_names),
        window=spec.window,
        head=check_head(spec.head),
    )
    xt, yt = _windows(d, train, spec.window)
    xv, yv = _windows(d, val, spec.window)
    return model.fit(xt, yt, x_val=xv, y_val=yv, seed=spec.trainer.seed)


def _scorer(m: Member) -> Any:
    return TorchScorer(m.model) if m.name in NEURAL else m.model


def _train_members(
    ctx: _Ctx, ens: EnsembleConfig, train: np.ndarray, prefix: str
) -> tuple[list[Member], list[TrainResult]] | None:
    """Train each member; None when preempted."""
    members, results = [], []
    for i, m in enumerate(ens.members):
        name = m["name"]
        cfg = model_config(name, {k: v for k, v in m.items() if k != "name"})
        if name in NEURAL:
            mod, res = _train_neural(
                ctx,
                name,
                cfg,
                train,
                ctx.data.val,
                ctx.checkpoint_dir / f"{prefix}member-{i}",
                None,
            )
            if res.status == "preempted":
                return None
            members.append(Member(name=name, config=cfg, model=mod))
            results.append(res)
        else:
            members.append(
                Member(name=name, config=cfg, model=_train_xgb(ctx, cfg, train, ctx.data.val))
            )
    return members, results


def _stack(ctx: _Ctx, ens: EnsembleConfig, final: list[Member]) -> XGBModel | None:
    """Stacker fit on out-of-fold member scores over the training rows; None when preempted."""
    spec, d = ctx.spec, ctx.data
    train = d.train
    oof = np.full((len(train), len(ens.members)), np.nan)
    for k, (tr_pos, ho_pos) in enumerate(
        purged_kfold(len(train), ens.folds, horizon=spec.horizon, embargo=spec.embargo)
    ):
        # Folds are over positions in the (time-ordered) training rows; purging in positions
        # is purging in bars for one series and conservative for several.
        out = _train_members(ctx, ens, train[tr_pos], prefix=f"fold-{k}-")
        if out is None:
            return None
        x, _ = _windows(d, train[ho_pos], spec.window)
        oof[ho_pos] = member_scores([_scorer(m) for m in out[0]], x)
    meta = StackedEnsemble.new_meta(ens, len(ens.members), check_head(spec.head))
    _, y = _windows(d, train, spec.window)
    # Early stopping on the validation block, scored by the final members.
    xv, yv = _windows(d, d.val, spec.window)
    sv = member_scores([_scorer(m) for m in final], xv)[:, None, :]
    return meta.fit(oof[:, None, :], y, x_val=sv, y_val=yv, seed=spec.trainer.seed)


def train_model(
    spec: TrainSpec | dict[str, Any],
    features: pd.DataFrame | Sequence[pd.DataFrame],
    labels: Any = None,
    out_dir: str | os.PathLike[str] = ".",
    *,
    checkpoint_dir: str | os.PathLike[str],
    feature_spec_hash: str = "",
    env: DistEnv | None = None,
    preempt: threading.Event | None = None,
    fault_hook: FaultHook | None = None,
    step_hook: StepHook | None = None,
) -> dict[str, Any]:
    """Train ``spec.model`` and write ``out_dir/bundle`` + ``out_dir/metrics.jsonl`` (rank 0).

    ``features``: one features frame per series (``timestamp``, float feature columns,
    ``warmup``; usually also ``label``). ``labels``: None (column ``label``), a column name,
    an aligned array, a timestamp-indexed Series, or one of those per frame.
    Resumes from the latest complete checkpoint in ``checkpoint_dir`` (must be on a filesystem
    every rank sees). Returns a dict: status, bundle (path or None), metrics (val/test),
    history, steps and batch facts; ``status == "preempted"`` means "checkpointed, resubmit".
    """
    spec = spec if isinstance(spec, TrainSpec) else TrainSpec.from_dict(spec)
    env = env or DistEnv()
    out = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir)
    data = prepare(spec, features, labels)
    ctx = _Ctx(
        spec=spec,
        data=data,
        env=env,
        checkpoint_dir=ckpt_dir,
        metrics_path=out / "metrics.jsonl",
        preempt=preempt,
        fault_hook=fault_hook,
        step_hook=step_hook,
    )
    log.info(
        "train %s: %d features, window %d, windows train/val/test = %d/%d/%d, rank %d/%d",
        spec.model,
        len(data.feature_names),
        spec.window,
        len(data.train),
        len(data.val),
        len(data.test),
        env.rank,
        env.world_size,
    )
    device = pick_device(env, spec.trainer.device)
    uses_ds = spec.trainer.engine == "deepspeed" and (
        spec.model in NEURAL
        or (
            spec.model in ENSEMBLES
            and any(m["name"] in NEURAL for m in model_config(spec.model, spec.params).members)
        )
    )
    result: dict[str, Any] = {
        "status": "completed",
        "bundle": None,
        "rank": env.rank,
        "world_size": env.world_size,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "feature_names": data.feature_names,
    }
    with process_group(env, device, always=uses_ds, keep=uses_ds):
        cfg = model_config(spec.model, spec.params)
        members: list[Member] | None = None
        weights = None
        if spec.model in NEURAL:
            model, res = _train_neural(
                ctx, spec.model, cfg, data.train, data.val, ckpt_dir, ctx.metrics_path
            )
            result.update(_result_facts(res))
            if res.status == "preempted":
                return result
            scorer: Any = TorchScorer(model)
            top = Member(name=spec.model, config=cfg, model=model)
        elif spec.model == "xgboost":
            if not env.is_main:
                log.warning("xgboost trains on rank 0 only; rank %d has nothing to do", env.rank)
                return _finish(result, env, out)
            xgb_model = _train_xgb(ctx, cfg, data.train, data.val)
            scorer = xgb_model
            top = Member(name="xgboost", config=cfg, model=xgb_model)
        else:
            trained = _train_members(ctx, cfg, data.train, prefix="")
            stacker = None
            if spec.model == "ensemble_stack" and trained is not None:
                stacker = _stack(ctx, cfg, trained[0])
            if trained is None or (spec.model == "ensemble_stack" and stacker is None):
                result["status"] = "preempted"
                return result
            members = trained[0]
            scorers = [_scorer(m) for m in members]
            if spec.model == "ensemble_mean":
                weights = cfg.weights
                scorer = WeightedEnsemble(scorers, weights)
            else:
                scorer = StackedEnsemble(scorers, stacker)  # type: ignore[arg-type]
            top = Member(name=spec.model, config=cfg, model=stacker)

        metrics = {}
        if env.is_main:
            for split in ("val", "test"):
                ends = getattr(data, split)
                x, y = _windows(data, ends, spec.window)
                metrics[split] = evaluate(
                    check_head(spec.head),
                    scorer.scores(x),
                    y.astype(np.float64) * data.label_scale,
                    label_scale=data.label_scale,
                )
                metrics[split]["n"] = len(ends)
            # From the first row any training window reads to the last training window end.
            first = pd.Timestamp(int(data.timestamps[data.train - spec.window + 1].min()), tz="UTC")
            last = pd.Timestamp(int(data.timestamps[data.train].max()), tz="UTC")
            bundle_dir = save_bundle(
                out / "bundle",
                model=top,
                head=check_head(spec.head),
                window=spec.window,
                feature_names=data.feature_names,
                scaler=data.scaler,
                label={"kind": spec.label_kind, "horizon": spec.horizon},
                label_scale=data.label_scale,
                feature_spec_hash=feature_spec_hash,
                train_window=(first, last),
                metrics=metrics,
                members=members,
                weights=weights,
                extra={"trainer": dataclasses.asdict(spec.trainer), "world_size": env.world_size},
            )
            result["bundle"] = str(bundle_dir)
            result["train_window"] = {"first": first.isoformat(), "last": last.isoformat()}
        result["metrics"] = metrics
        return _finish(result, env, out)


def _result_facts(res: TrainResult) -> dict[str, Any]:
    return {
        "status": res.status,
        "global_step": res.global_step,
        "epochs": res.epochs,
        "best_epoch": res.best_epoch,
        "best": res.best,
        "history": res.history,
        "step_losses": res.step_losses,
        "micro_batch_size": res.micro_batch_size,
        "accumulation": res.accumulation,
        "resumed_from": res.resumed_from,
    }


def _finish(result: dict[str, Any], env: DistEnv, out: Path) -> dict[str, Any]:
    if env.is_main:
        atomic_write_text(
            out / "result.json",
            json.dumps(
                {k: v for k, v in result.items() if k != "step_losses"}, indent=1, default=str
            ),
        )
    if tdist.is_initialized() and tdist.get_world_size() > 1:
        # When train_model returns on any rank, rank 0's bundle is on disk.
        tdist.barrier()
        if not env.is_main and result["status"] != "preempted":
            result["bundle"] = str(out / "bundle")
    return result
