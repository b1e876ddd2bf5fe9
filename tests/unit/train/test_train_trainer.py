"""Resume gives identical weights, OOM back-off keeps the global batch, checkpoints are
complete-or-absent, early stopping and metrics."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from deeptrade.models import build_model, model_config
from deeptrade.train import TrainSpec, prepare
from deeptrade.train import checkpoint as ckpt
from deeptrade.train.dist import DistEnv
from deeptrade.train.trainer import PreemptionHandler, Trainer, TrainerConfig

WINDOW = 8


def make_trainer(
    frame: pd.DataFrame, ckpt_dir: Path, *, model: str = "lstm", dropout: float = 0.2, **cfg: Any
) -> Trainer:
    """A small model on ``frame``. Dropout is on by default: resume must restore RNG streams."""
    hooks = {k: cfg.pop(k) for k in ("fault_hook", "step_hook", "preempt") if k in cfg}
    params = {"lstm": {"hidden": 8}, "cnn": {"channels": 4}}[model] | {"dropout": dropout}
    spec = TrainSpec(model=model, params=params, window=WINDOW, horizon=1)
    p = prepare(spec, frame)
    torch.manual_seed(0)
    net = build_model(
        model, model_config(model, params), n_features=3, window=WINDOW, head="regression"
    )
    tcfg = TrainerConfig(**{"epochs": 3, "global_batch_size": 32, "micro_batch_size": 16, **cfg})
    return Trainer(
        net,
        tcfg,
        head="regression",
        train=p.dataset(p.train, WINDOW),
        val=p.dataset(p.val, WINDOW),
        checkpoint_dir=ckpt_dir,
        env=DistEnv(environ={}),
        metrics_path=ckpt_dir.parent / "metrics.jsonl",
        label_scale=p.label_scale,
        **hooks,
    )


def params_of(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.module.state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def uninterrupted(
    frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Any, Any]:
    t = make_trainer(frame, tmp_path_factory.mktemp("full") / "ckpt")
    res = t.run()
    return res, params_of(t), t.best_state_dict()


def test_crash_and_resume_ends_with_identical_weights(
    frame: pd.DataFrame, tmp_path: Path, uninterrupted: tuple[Any, Any, Any]
) -> None:
    full, full_params, full_best = uninterrupted
    assert full.status == "completed" and full.global_step == 3 * 8  # 3 epochs x 8 steps

    def crash_at_11(trainer: Trainer, step: int) -> None:
        if step == 11:
            raise Crash

    first = make_trainer(frame, tmp_path / "ckpt", checkpoint_every=4, step_hook=crash_at_11)
    with pytest.raises(Crash):
        first.run()
    assert [n for n, _ in ckpt.complete_steps(tmp_path / "ckpt")] == [4, 8]  # keep_last=2
    second = make_trainer(frame, tmp_path / "ckpt", checkpoint_every=4)
    res = second.run()
    assert res.resumed_from == 8
    assert res.step_losses == full.step_losses
    assert res.history == full.history
    assert_identical(params_of(second), full_params)
    assert_identical(second.best_state_dict(), full_best)
    # The metrics file holds each epoch once, whatever was replayed.
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2]


def test_preemption_checkpoints_now_and_resume_is_identical(
    frame: pd.DataFrame, tmp_path: Path, uninterrupted: tuple[Any, Any, Any]
) -> None:
    full, full_params, _ = uninterrupted

    def preempt_at_13(trainer: Trainer, step: int) -> None:
        if step == 13:
            trainer.request_checkpoint()  # what the SIGUSR2 handler does

    first = make_trainer(frame, tmp_path / "ckpt", step_hook=preempt_at_13)
    res1 = first.run()
    assert res1.status == "preempted" and res1.global_step == 13
    assert ckpt.latest_complete(tmp_path / "ckpt") == tmp_path / "ckpt" / "step-13"
    second = make_trainer(frame, tmp_path / "ckpt")
    res2 = second.run()
    assert res2.status == "completed" and res2.resumed_from == 13
    assert res2.step_losses == full.step_losses
    assert_identical(params_of(second), full_params)
    # A finished run resumed again does nothing and reports the same.
    third = make_trainer(frame, tmp_path / "ckpt")
    res3 = third.run()
    assert res3.status == "completed" and res3.step_losses == full.step_losses


def test_preempt_event_from_outside(frame: pd.DataFrame, tmp_path: Path) -> None:
    ev = threading.Event()
    ev.set()
    res = make_trainer(frame, tmp_path / "ckpt", preempt=ev).run()
    assert res.status == "preempted" and res.global_step == 1


def test_incomplete_checkpoints_are_ignored(frame: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    make_trainer(frame, root, max_steps=3).run()
    # A later step directory without meta.json (a writer died) must not be picked up.
    (root / "step-99").mkdir()
    (root / "step-99" / "state.pt").write_bytes(b"garbage")
    assert ckpt.latest_complete(root) == root / "step-3"
    res = make_trainer(frame, root, max_steps=5).run()
    assert res.resumed_from == 3 and res.global_step == 5
    assert not (root / "step-99").exists()  # pruned with the old ones


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_oom_halves_micro_batch_and_keeps_the_global_batch(
    frame: pd.DataFrame, tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    def fake_oom(event: str, micro: int) -> None:
        if event == where and micro > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")

    caplog.set_level("WARNING")
    # No dropout: an abandoned forward would otherwise have drawn masks from the RNG stream.
    kw: dict[str, Any] = {"model": "cnn", "dropout": 0.0, "epochs": 1}
    backed_off = make_trainer(frame, tmp_path / "a", micro_batch_size=16, fault_hook=fake_oom, **kw)
    res = backed_off.run()
    assert (res.micro_batch_size, res.accumulation) == (4, 8)  # 16 -> 8 -> 4; 32 = 4 x 8
    assert f"out of memory in {where} at micro_batch_size=16" in caplog.text
    # Same micro-batches from the first step as a run configured with 4: identical weights.
    direct = make_trainer(frame, tmp_path / "b", micro_batch_size=4, **kw)
    res_direct = direct.run()
    assert res.step_losses == res_direct.step_losses
    assert_identical(params_of(backed_off), params_of(direct))
    # And the global batch really is unchanged: a run at micro 16 ends close to it.
    plain = make_trainer(frame, tmp_path / "c", micro_batch_size=16, **kw)
    res_plain = plain.run()
    assert res_plain.step_losses == pytest.approx(res.step_losses, rel=1e-5)


def test_oom_at_micro_batch_one_gives_up(frame: pd.DataFrame, tmp_path: Path) -> None:
    def always(event: str, micro: int) -> None:
        raise torch.OutOfMemoryError("injected")

    with pytest.raises(RuntimeError, match="micro_batch_size=1"):
        make_trainer(
            frame, tmp_path / "c", model="cnn", micro_batch_size=2, fault_hook=always
        ).run()


def test_early_stopping_with_patience(frame: pd.DataFrame, tmp_path: Path) -> None:
    # A huge learning rate makes validation worse after the first epoch.
    t = make_trainer(frame, tmp_path / "ckpt", model="cnn", epochs=10, patience=2, lr=0.5)
    res = t.run()
    assert res.status == "early_stopped"
    assert res.epochs == res.best_epoch + 1 + 2  # the best epoch, then `patience` worse ones
    assert len(res.history) == res.epochs
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"train_loss", "val_loss", "val_mse", "val_dir_acc", "val_ic"} <= set(rows[0])


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        TrainerConfig(global_batch_size=30, micro_batch_size=8)
    with pytest.raises(ValueError, match="engine"):
        TrainerConfig(engine="horovod")
    with pytest.raises(ValueError, match="monitor"):
        TrainerConfig(monitor="sharpe")


def test_preemption_handler_defers_the_previous_handler_until_handover() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        handler = PreemptionHandler(signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR2)
        assert handler.event.is_set() and calls == []  # training gets to checkpoint first
        handler.handover()  # then submitit's handler (here: the recorder) requeues
        assert calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
