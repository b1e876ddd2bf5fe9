"""Backtest job: walk-forward optimisation and out-of-sample stitching, sweeps and a report.

deeptrade run backtest strategy=ma_cross symbol=SPX
deeptrade submit backtest -m backtest.chunk=range(0,8) backtest.chunks=8 cluster=devslurm
deeptrade run backtest backtest.chunks=8 backtest.merge=true      # one table
"""

from __future__ import annotations

from typing import Any

from deeptrade.config.compose import hydra_entry
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io import ArtifactStore


def run(cfg: DeeptradeConfig) -> dict[str, Any]:
    from deeptrade.backtest.stage import run_backtest_stage

    return run_backtest_stage(cfg, ArtifactStore(cfg.paths.root))


main = hydra_entry("backtest", run)

if __name__ == "__main__":
    main()
