"""The CUDA paths: precision from compute capability, fp16 loss scaling, device placement.

Skipped without a GPU (``-m gpu`` selects them on GPU nodes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deeptrade.train import TrainerConfig, TrainSpec, load_bundle, train_model
from deeptrade.train.dist import DistEnv, pick_precision

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("precision", ["auto", "fp16"])
@pytest.mark.parametrize("engine", ["ddp", "deepspeed"])
def test_trains_on_gpu_in_mixed_precision(
    frame: pd.DataFrame, tmp_path: Path, precision: str, engine: str
) -> None:
    dev = torch.device("cuda", 0)
    expected = "bf16" if torch.cuda.get_device_capability(dev) >= (8, 0) else "fp16"
    assert pick_precision(dev, precision) == (expected if precision == "auto" else "fp16")
    spec = TrainSpec(
        model="lstm",
        params={"hidden": 16},
        window=8,
        trainer=TrainerConfig(
            engine=engine, precision=precision, epochs=2, global_batch_size=32, micro_batch_size=16
        ),
    )
    res = train_model(
        spec, frame, None, tmp_path, checkpoint_dir=tmp_path / "ckpt", env=DistEnv(environ={})
    )
    assert res["status"] == "completed"
    assert np.isfinite(res["step_losses"]).all()
    b = load_bundle(res["bundle"])  # weights saved as fp32, loadable on CPU
    assert all(t.dtype == torch.float32 for t in b.scorer.module.state_dict().values())
    assert np.isfinite(b.predict_frame(frame).dropna()).all()
