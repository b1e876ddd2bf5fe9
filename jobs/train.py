"""Train job: a features artifact -> a model bundle (BiLSTM, Transformer, CNN, XGBoost, ensembles).

deeptrade run train model=lstm trainer.epochs=5
deeptrade submit train -m symbol=AAPL,MSFT timeframe=1d model=lstm,cnn cluster=devslurm
srun --ntasks=2 python -m jobs.train trainer.engine=deepspeed   # ranks from Slurm
"""

from __future__ import annotations

from typing import Any

from deeptrade.config.compose import hydra_entry
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io import ArtifactStore


def run(cfg: DeeptradeConfig) -> dict[str, Any]:
    from deeptrade.launch.preempt import PREEMPT
    from deeptrade.train.stage import run_train

    return run_train(cfg, ArtifactStore(cfg.paths.root), preempt=PREEMPT)


main = hydra_entry("train", run)

if __name__ == "__main__":
    main()
