"""Publish job: a model-driven backtest that passes the gates -> releases/<name>/ for live.

deeptrade run publish strategy=model symbol=AAPL release.name=aapl-v1
"""

from __future__ import annotations

from typing import Any

from deeptrade.config.compose import hydra_entry
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io import ArtifactStore


def run(cfg: DeeptradeConfig) -> dict[str, Any]:
    from deeptrade.live.publish import publish

    return publish(cfg, ArtifactStore(cfg.paths.root))


main = hydra_entry("publish", run)

if __name__ == "__main__":
    main()
