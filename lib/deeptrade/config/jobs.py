"""The one schema every job composes: shared sections, each job reads the ones it needs.

All jobs share one config tree so that ``experiment=...`` files and a pipeline's overrides
apply to every stage alike; a stage's skip key hashes only the sections it uses, so changing
``trainer.lr`` never reruns ingest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deeptrade.config.backtest import BacktestConfig
from deeptrade.config.models import (
    CNNConfig,
    EnsembleConfig,
    LSTMConfig,
    TransformerConfig,
    XGBConfig,
)
from deeptrade.config.schema import JobConfig
from deeptrade.config.trainer import TrainerConfig
from deeptrade.data.sources import AlpacaBarsConfig
from deeptrade.data.validate import ValidationConfig
from deeptrade.features.config import FeatureConfig
from deeptrade.live.broker import BrokerConfig
from deeptrade.live.risk import RiskConfig


@dataclass(kw_only=True)
class DataConfig:
    name: str = "sample"
    """Artifact name: bars land in ``bars/<name>/``."""
    source: str = "sample"
    """sample (data shipped in PyPI packages) | files | alpaca."""
    dataset: str = "daily"
    """For source=sample: daily (S&P 500, NASDAQ, AAPL/IBM/MSFT/GOOG) or intraday (E-mini 1m)."""
    files: list[str] = field(default_factory=list)
    """For source=files: CSV/Parquet paths, one symbol per file (symbol = file stem)."""
    tz: str | None = None
    """Timezone for tz-naive timestamps in files; None rejects them."""
    symbols: list[str] = field(default_factory=list)
    """Keep only these symbols (empty: all the source has)."""
    timeframes: list[str] = field(default_factory=lambda: ["1d"])
    """Timeframes to store; finer source bars are resampled, session-aware."""
    source_timeframe: str = "1d"
    start: str | None = None
    end: str | None = None
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    """Policy per rule (fail | drop | quarantine | warn) and the calendar for gap checks and
    session-aware resampling, e.g. ``data.validation.negative_volume=drop``."""
    alpaca: AlpacaBarsConfig = field(default_factory=AlpacaBarsConfig)
    """Alpaca market-data client settings (timeouts, rate limit, retries); no keys here."""
    keys_file: str | None = None
    """0600 file with APCA_API_KEY_ID / APCA_API_SECRET_KEY; None reads them from the env."""


@dataclass(kw_only=True)
class FeaturesConfig:
    name: str = "default"
    """Artifact name suffix: features land in ``features/<data.name>-<name>/``."""
    backend: str = "cpu"
    """cpu (numba) | gpu (cuDF/CuPy)."""
    benchmark: str | None = None
    """Symbol whose returns relative features are computed against (None: skip)."""
    label_horizon: int = 1
    """Bars ahead for the forward-return label; training and backtests purge by it."""
    scheduler: str = "serial"
    """serial | dask: how partitions are processed."""
    workers: int = 2
    shard: int = 0
    """This task's share of the partitions (Slurm arrays: ``features.shard=range(0,N)``)."""
    shards: int = 1
    """How many tasks share the partitions; the last one to finish commits the artifact."""
    params: FeatureConfig = field(default_factory=FeatureConfig)
    """Indicator windows and periods (TA-Lib defaults), e.g. ``features.params.rsi_period=10``."""


@dataclass(kw_only=True)
class ModelSection:
    """Which model and its hyper-parameters; every model's schema is here, typed."""

    name: str = "lstm"
    """lstm | transformer | cnn | xgboost | ensemble_mean | ensemble_stack."""
    head: str = "regression"
    """regression (predict the label) | direction (P(label > 0))."""
    window: int = 30
    """Bars per input window."""
    lstm: LSTMConfig = field(default_factory=LSTMConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    xgboost: XGBConfig = field(default_factory=XGBConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)


@dataclass(kw_only=True)
class TrainSection:
    tag: str = ""
    """Suffix that tells apart models trained with other hyper-parameters on the same data."""
    symbols: list[str] = field(default_factory=list)
    """Series trained on (empty: ``symbol`` if set, else every symbol of the timeframe)."""
    fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    """Train / validation / test shares of the time range, in time order."""
    embargo: int = 0
    """Bars dropped after each held-out block, on top of the purge by the label horizon."""
    scale_label: bool = True


@dataclass(kw_only=True)
class StrategySection:
    name: str = "ma_cross"
    """ma_cross | rsi | donchian | momentum | predictions (the same code the live job runs)."""
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Parameter axes swept in sample, e.g. {fast: [5, 10, 20], slow: [50, 100, 200]}."""
    metric: str = "sharpe"
    """What the in-sample optimisation maximises."""


@dataclass(kw_only=True)
class BacktestSection:
    name: str = "default"
    """Artifact name suffix: results land in ``backtests/<data.name>-<strategy.name>-<name>``."""
    costs: BacktestConfig = field(default_factory=BacktestConfig)
    """Fills, commissions, slippage, sizing, leverage, stops."""
    train_bars: int = 504
    """In-sample bars per walk-forward window."""
    test_bars: int = 126
    """Out-of-sample bars per window (also the step between windows)."""
    anchored: bool = False
    """Anchored (expanding) in-sample windows instead of rolling ones."""
    embargo: int = 0
    """Bars skipped after each in-sample part, on top of the purge by the label horizon."""
    purge: int = 0
    """Bars purged between in-sample and out-of-sample parts (a model's label horizon)."""
    chunk: int = 0
    """This task's chunk of the grid (Slurm arrays over grid chunks)."""
    chunks: int = 1
    """Chunks the grid is split into; ``merge=true`` afterwards builds one table."""
    merge: bool = False
    """Merge the chunk tables of an earlier array run into one artifact."""
    threads: int = 0
    """numba threads for the grid (0: all cores)."""


@dataclass(kw_only=True)
class ReleaseSection:
    name: str = "latest"
    """``releases/<name>/``: the only thing the live job reads."""
    backtest: str = ""
    """The backtest artifact to publish (``backtests/<name>``); empty: this config's own."""
    min_oos_sharpe: float = 0.0
    """Gate: the stitched out-of-sample Sharpe must reach this."""
    max_drawdown: float = 0.35
    """Gate: the out-of-sample max drawdown must stay below this."""
    min_trades: int = 3
    """Gate: at least this many out-of-sample trades (a silent model proves nothing)."""


@dataclass(kw_only=True)
class LiveSection:
    release: str = "latest"
    """``releases/<name>`` to trade; refused if tampered, of another schema or too old."""
    max_release_age_days: float = 30.0
    keys_file: str | None = None
    """0600 file with APCA_API_KEY_ID / APCA_API_SECRET_KEY; None reads them from the env."""
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    """mode (paper | live | dry_run), URLs and HTTP timeouts."""
    risk: RiskConfig = field(default_factory=RiskConfig)
    timeframe: str = "1Day"
    """Alpaca bar timeframe the release trades on (1Min, 5Min, 1Hour, 1Day)."""
    warmup_days: float = 400.0
    """History fetched at start to warm the streaming features up (>= their longest window)."""
    order_type: str = "market"
    fill_timeout_s: float = 30.0
    poll_interval_s: float = 1.0
    notional_per_unit: float = 1000.0
    """Dollars per unit of target position."""
    max_cycles: int = 0
    """Stop after this many bars (0: run until SIGTERM, the kill switch or the wall time)."""
    kill_switch: str = ""
    """A file whose existence cancels open orders and stops (default: <journal dir>/KILL)."""


@dataclass(kw_only=True)
class DeeptradeConfig(JobConfig):
    symbol: str | None = None
    """One symbol for per-symbol jobs (train, backtest); sweeps set it per task."""
    timeframe: str = "1d"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelSection = field(default_factory=ModelSection)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    train: TrainSection = field(default_factory=TrainSection)
    strategy: StrategySection = field(default_factory=StrategySection)
    backtest: BacktestSection = field(default_factory=BacktestSection)
    release: ReleaseSection = field(default_factory=ReleaseSection)
    live: LiveSection = field(default_factory=LiveSection)


_registered = False


def register() -> None:
    """Put the schema in Hydra's ConfigStore (idempotent); conf/base.yaml builds on it."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="deeptrade_schema", node=DeeptradeConfig)
    _registered = True
