"""Live trading on Alpaca: reconcile, decide on closed bars, check risk, trade the difference.

Wiring (what ``jobs/live.py`` does)::

    manifest = check_release(release_dir, expected_feature_spec_hash=..., max_age=...)
    keys = AlpacaKeys.from_file(path) or AlpacaKeys.from_env()
    broker = Broker(make_clients(broker_cfg, keys), broker_cfg)
    engine = LiveEngine(cfg=EngineConfig(release_id=release_id(manifest), symbols=[...]),
                        risk=RiskConfig(...), broker=broker, journal=Journal(path),
                        features=..., predictor=load_bundle(...), policy=PredictionPolicy(...))
    engine.run()        # reconciles first; SIGTERM stops cleanly, SIGUSR1 / kill file kills
"""

from deeptrade.live.adapters import PredictionPolicy
from deeptrade.live.broker import (
    AlpacaKeys,
    Broker,
    BrokerConfig,
    BrokerError,
    make_client_order_id,
    make_clients,
)
from deeptrade.live.engine import (
    CycleReport,
    EngineConfig,
    KillSwitchEngaged,
    LiveEngine,
    ReconcileError,
    ReconcileReport,
)
from deeptrade.live.journal import Journal
from deeptrade.live.protocols import Bar, FeatureState, Policy, Predictor
from deeptrade.live.release import check_release, release_id
from deeptrade.live.risk import RiskConfig

__all__ = [
    "AlpacaKeys",
    "Bar",
    "Broker",
    "BrokerConfig",
    "BrokerError",
    "CycleReport",
    "EngineConfig",
    "FeatureState",
    "Journal",
    "KillSwitchEngaged",
    "LiveEngine",
    "Policy",
    "PredictionPolicy",
    "Predictor",
    "ReconcileError",
    "ReconcileReport",
    "RiskConfig",
    "check_release",
    "make_client_order_id",
    "make_clients",
    "release_id",
]
