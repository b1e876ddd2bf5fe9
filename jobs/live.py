"""Live job: trade a published release on Alpaca (paper by default), restart-safe.

deeptrade run live live.release=aapl-v1                      # paper
deeptrade run live live.broker.mode=dry_run                   # log intended orders only
DEEPTRADE_LIVE_CONFIRM=I_UNDERSTAND deeptrade run live live.broker.mode=live
deeptrade submit live cluster=live                            # long-running, never preempted
"""

from __future__ import annotations

from typing import Any

from deeptrade.config.compose import hydra_entry
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io import ArtifactStore


def run(cfg: DeeptradeConfig) -> dict[str, Any]:
    from deeptrade.live.run import run_live

    return run_live(cfg, ArtifactStore(cfg.paths.root))


main = hydra_entry("live", run)

if __name__ == "__main__":
    main()
