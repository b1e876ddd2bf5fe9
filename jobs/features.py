"""Features job: bars artifact -> 35+ point-in-time features and the forward-return label.

python -m jobs.features features.benchmark=SPX
deeptrade run features features.backend=gpu      # cuDF on GPU nodes, same numbers
deeptrade submit features -m features.shard=range(0,8) features.shards=8 cluster=devslurm
"""

from __future__ import annotations

from typing import Any

from deeptrade.config.compose import hydra_entry
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io import ArtifactStore


def run(cfg: DeeptradeConfig) -> dict[str, Any]:
    from deeptrade.features.stage import run_features
    from deeptrade.launch.preempt import PREEMPT

    store = ArtifactStore(cfg.paths.root)
    return run_features(
        cfg.data,
        cfg.features,
        store,
        force=cfg.run.force,
        progress=cfg.run.progress,
        preempt=PREEMPT,
    )


main = hydra_entry("features", run)

if __name__ == "__main__":
    main()
