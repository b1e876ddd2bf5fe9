"""One trainer, two engines: torch DDP or DeepSpeed ZeRO, chosen by ``TrainerConfig.engine``.

Every rank runs the same code. The global batch (``global_batch_size`` windows per optimizer
step) is fixed: rank ``r`` takes the ``r``-th equal slice of each global batch of a
seeded per-epoch permutation and splits it into micro-batches. Each micro-batch's loss is
weighted by its share of the rank's slice, so the accumulated gradient is the mean over the
global batch whatever the micro-batch size, the accumulation count or the number of ranks.
That is what makes a 2-rank run match a single-process run, and what lets the CUDA-OOM
back-off halve the micro-batch in the middle of a step without changing the result.

Training always starts from the latest complete checkpoint, which holds everything that
influences later steps (weights, optimizer, loss scaler, per-rank RNG, data position,
micro-batch after back-offs, early-stopping state, history), so an interrupted run resumed
from it ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

from deeptrade.config.trainer import TrainerConfig
from deeptrade.io.atomic import atomic_dir, atomic_write_text
from deeptrade.models.heads import Head, check_head, loss_fn
from deeptrade.train import checkpoint as ckpt
from deeptrade.train.data import WindowDataset
from deeptrade.train.dist import DistEnv, pick_device, pick_precision, process_group
from deeptrade.train.metrics import EarlyStopping, evaluate

log = logging.getLogger(__name__)

DS_TAG = "deepspeed"


@dataclass(kw_only=True)
class TrainResult:
    status: str
    """completed | early_stopped | max_steps | preempted (a checkpoint was written; resume)."""
    global_step: int
    epochs: int
    """Completed epochs."""
    best_epoch: int
    best: dict[str, float]
    """History row of the best epoch (empty when no epoch completed)."""
    history: list[dict[str, float]]
    step_losses: list[float]
    """Training loss of every optimizer step, averaged over the global batch."""
    micro_batch_size: int
    accumulation: int
    resumed_from: int | None
    """Step of the checkpoint this run started from (None: fresh start)."""


FaultHook = Callable[[str, int], None]
StepHook = Callable[["Trainer", int], None]


class Trainer:
    """Train ``model`` on ``train`` windows, validate on ``val``, checkpoint into ``checkpoint_dir``.

    ``fault_hook(event, micro_batch)`` runs before every forward ("forward") and backward
    ("backward"); it exists so tests can raise ``torch.OutOfMemoryError`` on CPU.
    ``step_hook(trainer, global_step)`` runs after every optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainerConfig,
        *,
        head: Head,
        train: WindowDataset,
        val: WindowDataset,
        checkpoint_dir: str | os.PathLike[str],
        env: DistEnv | None = None,
        metrics_path: str | os.PathLike[str] | None = None,
        label_scale: float = 1.0,
        preempt: threading.Event | None = None,
        fault_hook: FaultHook | None = None,
        step_hook: StepHook | None = None,
    ) -> None:
        self.model, self.cfg, self.head = model, cfg, check_head(head)
        self.train_ds, self.val_ds = train, val
        self.ckpt_dir = Path(checkpoint_dir)
        self.env = env or DistEnv()
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.label_scale = label_scale
        self._preempt = preempt or threading.Event()
        self.fault_hook, self.step_hook = fault_hook, step_hook
        self.device = pick_device(self.env, cfg.device)
        self.precision = pick_precision(self.device, cfg.precision)

        world = self.env.world_size
        if cfg.global_batch_size % world:
            raise ValueError(
                f"trainer.global_batch_size ({cfg.global_batch_size}) must be divisible by the "
                f"number of ranks ({world})"
            )
        self.per_rank = cfg.global_batch_size // world
        self.micro = min(cfg.micro_batch_size, self.per_rank)
        if self.per_rank % self.micro:
            raise ValueError(
                f"trainer: per-rank batch {self.per_rank} (global {cfg.global_batch_size} / "
                f"{world} ranks) is not a multiple of micro_batch_size {self.micro}"
            )
        # Training state; everything below is in the checkpoint.
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.status: str | None = None
        self.early = EarlyStopping(
            monitor=cfg.monitor, patience=cfg.patience, min_delta=cfg.min_delta
        )
        self.history: list[dict[str, float]] = []
        self.step_losses: list[float] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.resumed_from: int | None = None
        self._pending: list[torch.Tensor] = []
        self._tb: Any = None

    # ------------------------------------------------------------------ public

    @property
    def accumulation(self) -> int:
        return math.ceil(self.per_rank / self.micro)

    def request_checkpoint(self) -> None:
        """Ask for a checkpoint and a clean stop at the next step boundary (signal-safe)."""
        self._preempt.set()

    def run(self) -> TrainResult:
        ds = self.cfg.engine == "deepspeed"
        with process_group(self.env, self.device, always=ds, keep=ds):
            self._setup()
            self._resume()
            if self.status is None:
                status = self._loop()
                if status != "preempted" and status != "max_steps":
                    self.status = status
            else:
                status = self.status
                log.info("checkpoint says training already %s; nothing to do", status)
            return self._result(status)

    def best_state_dict(self) -> dict[str, torch.Tensor]:
        """fp32 CPU weights of the best epoch (the last ones when nothing was validated)."""
        return self.best_state if self.best_state is not None else self._full_state_dict()

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        torch.manual_seed(self.cfg.seed + 1_000_003 * (self.env.rank + 1))
        if self.device.type == "cuda":
            torch.cuda.manual_seed(self.cfg.seed + 1_000_003 * (self.env.rank + 1))
        model = self.model.to(self.device)
        opt = torch.optim.AdamW(
            model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        self.distributed = tdist.is_initialized() and tdist.get_world_size() > 1
        if self.cfg.engine == "ddp":
            self.optimizer = opt
            self.engine: Any = None
            self.wrapped: nn.Module = model
            if self.distributed:
                from torch.nn.parallel import DistributedDataParallel

                ids = [self.device.index] if self.device.type == "cuda" else None
                self.wrapped = DistributedDataParallel(model, device_ids=ids)
            self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        else:
            ds = import_deepspeed(self.device)
            self.env.export()
            self.engine, self.optimizer, _, _ = ds.initialize(
                model=model, optimizer=opt, config=self.deepspeed_config()
            )
            self.wrapped = self.engine
            # DeepSpeed scales fp16 losses itself; ours stays disabled.
            self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        log.info(
            "engine=%s precision=%s device=%s ranks=%d global_batch=%d micro=%d accumulation=%d",
            self.cfg.engine,
            self.precision,
            self.device,
            self.env.world_size,
            self.cfg.global_batch_size,
            self.micro,
            self.accumulation,
        )

    def deepspeed_config(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "train_batch_size": cfg.global_batch_size,
            "train_micro_batch_size_per_gpu": self.micro,
            "gradient_accumulation_steps": self.accumulation,
            "gradient_clipping": cfg.grad_clip,
            "zero_optimization": {"stage": cfg.zero_stage},
            "fp16": {"enabled": self.precision == "fp16", "loss_scale": 0},
            "bf16": {"enabled": self.precision == "bf16"},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 1 << 30,
            "wall_clock_breakdown": False,
        }

    @property
    def module(self) -> nn.Module:
        """The bare model (inside DDP / the DeepSpeed engine)."""
        if self.wrapped is self.model:
            return self.model
        return cast(nn.Module, self.wrapped.module)

    # ------------------------------------------------------------------ loop

    def _loop(self) -> str:
        cfg, rank = self.cfg, self.env.rank
        n, G = len(self.train_ds), cfg.global_batch_size
        steps_per_epoch = n // G
        if steps_per_epoch == 0:
            raise ValueError(
                f"the training split has {n} windows, fewer than one global batch "
                f"({G}); lower trainer.global_batch_size or provide more data"
            )
        if cfg.max_steps and self.global_step >= cfg.max_steps:
            return "max_steps"
        while self.epoch < cfg.epochs:
            # The permutation depends only on (seed, epoch): every rank and every resume
            # sees the same order; the tail that does not fill a global batch is dropped.
            perm = np.random.default_rng([cfg.seed, self.epoch]).permutation(n)
            for s in range(self.step_in_epoch, steps_per_epoch):
                batch = perm[s * G : (s + 1) * G]
                self._train_step(batch[rank * self.per_rank : (rank + 1) * self.per_rank])
                self.global_step += 1
                self.step_in_epoch = s + 1
                if self.step_hook is not None:
                    self.step_hook(self, self.global_step)
                if self._any(self._preempt.is_set()):
                    log.warning(
                        "checkpoint requested: saving step %d and stopping", self.global_step
                    )
                    self._save_checkpoint()
                    return "preempted"
                if cfg.max_steps and self.global_step >= cfg.max_steps:
                    self._save_checkpoint()
                    return "max_steps"
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                    self._save_checkpoint()
            stop = self._end_epoch()
            if stop:
                self.status = "early_stopped"
            elif self.epoch >= cfg.epochs:
                self.status = "completed"
            self._save_checkpoint()
            if stop:
                return "early_stopped"
        return "completed"

    def _train_step(self, idx: np.ndarray) -> None:
        n, pos = len(idx), 0
        total = torch.zeros((), device=self.device)
        self._zero_grad()
        while pos < n:
            mb = idx[pos : pos + self.micro]
            last = pos + len(mb) >= n
            xb, yb = self.train_ds.batch(mb)
            x = torch.from_numpy(xb).to(self.device, non_blocking=True)
            y = torch.from_numpy(yb).to(self.device, non_blocking=True)
            with self._sync_context(last):
                loss, oom = None, False
                try:
                    self._fault("forward", len(mb))
                    loss = self._forward(x, y) * (len(mb) / n)
                except torch.OutOfMemoryError:
                    oom = True
                # Vote before backward: with DDP/ZeRO the backward is collective, so either
                # every rank runs it or none does.
                if self._any_oom(oom):
                    del loss
                    self._back_off("forward")
                    continue
                assert loss is not None
                try:
                    self._fault("backward", len(mb))
                    self._backward(loss, last)
                except torch.OutOfMemoryError as e:
                    if self.cfg.engine == "ddp" and not self.distributed:
                        # Gradients are half-accumulated: discard them and redo the step.
                        self._zero_grad()
                        self._back_off("backward")
                        pos, total = 0, torch.zeros((), device=self.device)
                        continue
                    raise RuntimeError(
                        f"CUDA out of memory in the backward pass with micro_batch_size="
                        f"{len(mb)} on rank {self.env.rank}; peers are inside the collective "
                        f"so this cannot be retried. Set trainer.micro_batch_size="
                        f"{max(1, self.micro // 2)} and resubmit (training resumes)."
                    ) from e
            total += loss.detach()
            pos += len(mb)
        self._optimizer_step()
        self._pending.append(total)

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.engine is not None:
            if self.precision != "fp32":
                x = x.to(torch.float16 if self.precision == "fp16" else torch.bfloat16)
            return loss_fn(self.head, self.engine(x), y)
        with self._autocast():
            score = self.wrapped(x)
        return loss_fn(self.head, score, y)

    def _backward(self, loss: torch.Tensor, last: bool) -> None:
        if self.engine is not None:
            # We weight micro-batch losses ourselves (their sizes can differ after a back-off)
            # and mark the accumulation boundary explicitly.
            self.engine.set_gradient_accumulation_boundary(last)
            self.engine.backward(loss, scale_wrt_gas=False)
        else:
            self.scaler.scale(loss).backward()

    def _optimizer_step(self) -> None:
        if self.engine is not None:
            self.engine.step()
            return
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _zero_grad(self) -> None:
        if self.engine is None:
            self.optimizer.zero_grad(set_to_none=True)

    def _sync_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        if self.engine is None and self.distributed and not last:
            return self.wrapped.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _fault(self, event: str, micro: int) -> None:
        if self.fault_hook is not None:
            self.fault_hook(event, micro)

    def _back_off(self, where: str) -> None:
        if self.micro == 1:
            raise RuntimeError(
                "CUDA out of memory with micro_batch_size=1; the model does not fit this GPU"
            )
        old = self.micro
        self.micro = max(1, self.micro // 2)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.engine is not None:
            self.engine.set_train_micro_batch_size(self.micro)
        log.warning(
            "out of memory in %s at micro_batch_size=%d: now micro_batch_size=%d, accumulation=%d "
            "(global batch %d unchanged)",
            where,
            old,
            self.micro,
            self.accumulation,
            self.cfg.global_batch_size,
        )

    # ------------------------------------------------------------------ collectives

    def _any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item())

    def _any_oom(self, oom: bool) -> bool:
        # Real OOMs only happen on GPUs; on CPU the vote is only needed when a test injects one.
        if self.device.type == "cuda" or self.fault_hook is not None:
            return self._any(oom)
        return oom

    def _flush_losses(self) -> None:
        """Turn this rank's pending per-step losses into global-batch means (collective)."""
        if not self._pending:
            return
        t = torch.stack(self._pending).float()
        if self.distributed:
            tdist.all_reduce(t)
            t /= tdist.get_world_size()
        self.step_losses.extend(t.cpu().tolist())
        self._pending = []

    # ------------------------------------------------------------------ evaluation

    def _end_epoch(self) -> bool:
        self._flush_losses()
        n_steps = self.step_in_epoch
        train_loss = float(np.mean(self.step_losses[-n_steps:])) if n_steps else math.nan
        row: dict[str, float] = {
            "epoch": self.epoch,
            "step": self.global_step,
            "train_loss": train_loss,
            "micro_batch_size": self.micro,
        }
        improved = True
        if len(self.val_ds):
            m = self._validate()
            row.update({f"val_{k}": v for k, v in m.items()})
            improved = self.early.update(row[self.cfg.monitor], self.epoch)
        if improved:
            self.best_state = self._full_state_dict()
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch = 0
        log.info("epoch %s", json.dumps(row))
        if self.env.is_main:
            self._write_metrics(row)
        return self.early.should_stop

    def _validate(self) -> dict[str, float]:
        # Every rank scores the whole validation set: equal work keeps ZeRO-3 gathers in step,
        # and all ranks reach the same early-stopping decision without a broadcast.
        module = self.module
        module.eval()
        n, bs = len(self.val_ds), self.cfg.eval_batch_size
        scores = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, n, bs):
                xb, _ = self.val_ds.batch(np.arange(i, min(i + bs, n)))
                x = torch.from_numpy(xb).to(self.device)
                if self.engine is not None and self.precision != "fp32":
                    x = x.to(next(module.parameters()).dtype)
                scores.append(module(x).float().cpu())
        module.train()
        s = torch.cat(scores)
        y = torch.from_numpy(self.val_ds.labels().astype(np.float32))
        out = {"loss": float(loss_fn(self.head, s, y))}
        out.update(
            evaluate(
                self.head, s.numpy(), y.numpy() * self.label_scale, label_scale=self.label_scale
            )
        )
        return out

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        module = self.module
        state = {
            k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
            for k, v in module.state_dict().items()
        }
        if self.engine is not None:
            # fp32 master weights (partitioned under ZeRO; assembling them is collective).
            from deepspeed.utils import safe_get_full_fp32_param

            for name, p in module.named_parameters():
                full = safe_get_full_fp32_param(p)
                if full is not None:
                    state[name] = full.detach().float().cpu().clone()
        return state

    def _write_metrics(self, row: dict[str, float]) -> None:
        if self.metrics_path is None:
            return
        # Rewritten whole from the history, so a resumed run never duplicates epochs.
        text = "".join(json.dumps(h) + "\n" for h in self.history)
        atomic_write_text(self.metrics_path, text)
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = False
            else:
                self._tb = SummaryWriter(str(self.metrics_path.parent / "tensorboard"))
        if self._tb:
            for k, v in row.items():
                if k not in ("epoch", "step"):
                    self._tb.add_scalar(k, v, int(row["epoch"]))
            self._tb.flush()

    # ------------------------------------------------------------------ checkpoints

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "status": self.status,
            "micro": self.micro,
            "early": self.early.state(),
            "history": self.history,
            "step_losses": self.step_losses,
            "best_state": self.best_state,
        }

    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _gather(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * tdist.get_world_size()
        tdist.all_gather_object(out, obj)
        return out

    def _save_checkpoint(self) -> None:
        """Collective: every rank calls it at the same step; rank 0 makes it visible."""
        self._flush_losses()
        rngs = self._gather(self._rng_state())
        final = ckpt.step_dir(self.ckpt_dir, self.global_step)
        meta = {
            "step": self.global_step,
            "epoch": self.epoch,
            "engine": self.cfg.engine,
            "world_size": self.env.world_size,
            "global_batch_size": self.cfg.global_batch_size,
            "seed": self.cfg.seed,
            "format": 1,
        }
        main = self.env.is_main
        with atomic_dir(final) if main else contextlib.nullcontext(None) as tmp:
            if self.engine is not None:
                # ZeRO keeps optimizer state partitioned: each rank writes its own shard into
                # rank 0's temporary directory (on the shared filesystem); rank 0 alone makes
                # the checkpoint visible, after everyone finished.
                path = [str(tmp) if main else None]
                if self.distributed:
                    tdist.broadcast_object_list(path, src=0)
                self.engine.save_checkpoint(path[0], tag=DS_TAG, save_latest=False)
                if self.distributed:
                    tdist.barrier()
            if main:
                assert tmp is not None
                state = {"trainer": self._trainer_state(), "rng": rngs}
                if self.engine is None:
                    state["model"] = self.module.state_dict()
                    state["optimizer"] = self.optimizer.state_dict()
                    state["grad_scaler"] = self.scaler.state_dict()
                torch.save(state, tmp / "state.pt")
                ckpt.write_meta(tmp, meta)
        if main:
            ckpt.prune(self.ckpt_dir, self.cfg.keep_last)
            log.info("checkpoint %s", final)

    def _resume(self) -> None:
        latest = [ckpt.latest_complete(self.ckpt_dir) if self.env.is_main else None]
        if self.distributed:
            # Rank 0 decides, so every rank loads the same step even if the shared filesystem
            # shows them different listings.
            tdist.broadcast_object_list(latest, src=0)
        path = latest[0]
        if path is None:
            return
        meta = ckpt.read_meta(path)
        if meta["engine"] != self.cfg.engine:
            raise ValueError(
                f"checkpoint {path} was written by engine={meta['engine']}, this run uses "
                f"engine={self.cfg.engine}; use a fresh checkpoint_dir or the same engine"
            )
        for key in ("global_batch_size", "seed"):
            # Both fix the data order: resuming with another value would not continue the run.
            if meta[key] != getattr(self.cfg, key):
                raise ValueError(
                    f"checkpoint {path} was written with trainer.{key}={meta[key]}, this run has "
                    f"{getattr(self.cfg, key)}; use the same value or a fresh checkpoint_dir"
                )
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        if self.engine is not None:
            if meta["world_size"] != self.env.world_size:
                raise ValueError(
                    f"checkpoint {path} holds ZeRO shards of {meta['world_size']} ranks; "
                    f"resume with {meta['world_size']} ranks (this run has {self.env.world_size})"
                )
            loaded, _ = self.engine.load_checkpoint(
                str(path), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=False
            )
            if loaded is None:
                raise ValueError(f"DeepSpeed could not load its shards from {path}/{DS_TAG}")
        else:
            self.module.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["grad_scaler"])
        t = state["trainer"]
        self.epoch, self.step_in_epoch, self.global_step = (
            t["epoch"],
            t["step_in_epoch"],
            t["global_step"],
        )
        self.status, self.history, self.step_losses = t["status"], t["history"], t["step_losses"]
        self.early.load(t["early"])
        self.best_state = t["best_state"]
        if t["micro"] != self.micro:
            log.warning("resuming with micro_batch_size=%d from earlier OOM back-offs", t["micro"])
            self.micro = t["micro"]
            if self.engine is not None:
                self.engine.set_train_micro_batch_size(self.micro)
        rngs = state["rng"]
        if len(rngs) == self.env.world_size:
            torch.set_rng_state(rngs[self.env.rank]["torch"])
            if self.device.type == "cuda" and "cuda" in rngs[self.env.rank]:
                torch.cuda.set_rng_state(rngs[self.env.rank]["cuda"], self.device)
        else:
            log.warning(
                "checkpoint has RNG states of %d ranks, this run has %d: dropout streams restart "
                "(results will differ from an uninterrupted run)",
                len(rngs),
                self.env.world_size,
            )
        self.resumed_from = self.global_step
        log.info("resumed from %s (epoch %d, step %d)", path, self.epoch, self.global_step)

    # ------------------------------------------------------------------ result

    def _result(self, status: str) -> TrainResult:
        self._flush_losses()
        best = (
            self.history[self.early.best_epoch]
            if 0 <= self.early.best_epoch < len(self.history)
            else (self.history[-1] if self.history else {})
        )
        return TrainResult(
            status=status,
            global_step=self.global_step,
            epochs=self.epoch,
            best_epoch=self.early.best_epoch
            if self.early.best is not None
            else len(self.history) - 1,
            best=dict(best),
            history=[dict(h) for h in self.history],
            step_losses=list(self.step_losses),
            micro_batch_size=self.micro,
            accumulation=self.accumulation,
            resumed_from=self.resumed_from,
        )


def import_deepspeed(device: torch.device) -> Any:
    """Import DeepSpeed for ``device``; on CPU it runs on gloo without building native ops.

    DeepSpeed picks its accelerator at import (``DS_ACCELERATOR``). Its CPU communication
    backend compiles a shared-memory all-reduce op with ninja on first use (~1 min on two
    cores, once per machine); that op only serves inference all-reduce, never ZeRO training,
    so it is switched off through DeepSpeed's own op-compatibility table.
    """
    os.environ.setdefault("DS_ACCELERATOR", "cpu" if device.type == "cpu" else "cuda")
    import deepspeed
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(logging.WARNING)
    # DeepSpeed 0.19.8 calls this torch API on every ZeRO step; the warning is not ours to fix.
    warnings.filterwarnings(
        "ignore", message=r".*all_gather_into_tensor.* is deprecated", category=FutureWarning
    )
    if device.type == "cpu":
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    return deepspeed


class PreemptionHandler:
    """Turn a preemption signal into a checkpoint at the next step, then hand over.

    submitit calls its ``checkpoint()`` hook inside the signal handler, mid-step, and exits
    right after requeueing; a distributed checkpoint cannot be taken there. Installed after
    submitit's handler, this one only sets ``event`` (pass it to ``train_model(preempt=...)``);
    when training has returned ``preempted`` with its checkpoint on disk, ``handover()`` calls
    the previous handler, which requeues (rank 0) and exits.
    """

    def __init__(self, signum: int = signal.SIGUSR2) -> None:
        self.signum = signum
        self.event = threading.Event()
        self._frame: Any = None
        self._previous = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._frame = frame
        self.event.set()

    def restore(self) -> None:
        signal.signal(self.signum, self._previous)

    def handover(self) -> None:
        """Restore the previous handler and, if the signal came, run it now."""
        self.restore()
        if self.event.is_set() and callable(self._previous):
            self._previous(self.signum, self._frame)
