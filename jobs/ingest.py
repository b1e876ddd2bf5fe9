"""Ingest job: raw OHLCV bars -> validated, resampled, partitioned Parquet in the store.

python -m jobs.ingest data=sample          # real daily bars shipped in PyPI packages
deeptrade run ingest data=intraday         # E-mini 1m bars, resampled to 5m/15m/1h
"""

from __future__ import annotations

import logging
from typing import Any

from deeptrade.config.compose import hydra_entry
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io import ArtifactStore

log = logging.getLogger(__name__)


def run(cfg: DeeptradeConfig) -> dict[str, Any]:
    from deeptrade.data.stage import run_ingest

    store = ArtifactStore(cfg.paths.root)
    return run_ingest(cfg.data, store, force=cfg.run.force)


main = hydra_entry("ingest", run)

if __name__ == "__main__":
    main()
