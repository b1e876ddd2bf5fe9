"""Bars in, validated bars out: the pure library behind the ingest job.

* ``schema``: the bar frame contract (columns, dtypes, the start-time/known-at-end rule).
* ``sources``: raw frames from files (``read_bars_file``), packaged samples (``load_sample``)
  and Alpaca (``AlpacaBarsSource``).
* ``validate``: ``validate_bars`` applies named rules with per-rule policies.
* ``resample``: session-aware ``resample_bars`` and ``bars_from_trades``.
* ``http_guard``: timeouts, rate limit and retries for alpaca-py REST clients.
"""

from deeptrade.data.resample import bars_from_trades, resample_bars
from deeptrade.data.schema import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TIMEFRAMES,
    check_bars,
    known_at,
)
from deeptrade.data.sources import (
    SAMPLES,
    AlpacaBarsConfig,
    AlpacaBarsSource,
    load_sample,
    read_bars_file,
)
from deeptrade.data.validate import RULES, ValidationConfig, ValidationResult, validate_bars

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "RULES",
    "SAMPLES",
    "TIMEFRAMES",
    "AlpacaBarsConfig",
    "AlpacaBarsSource",
    "ValidationConfig",
    "ValidationResult",
    "bars_from_trades",
    "check_bars",
    "known_at",
    "load_sample",
    "read_bars_file",
    "resample_bars",
    "validate_bars",
]
