"""XGBoost on the flattened last ``k`` rows of each window (``hist`` trees, GPU when present)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeptrade.config.models import XGBConfig
from deeptrade.models.heads import Head


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class XGBModel:
    """Gradient-boosted trees; ``fit`` on windows, ``scores`` like the neural models."""

    def __init__(self, cfg: XGBConfig, *, n_features: int, window: int, head: Head) -> None:
        if cfg.last_k > window:
            raise ValueError(f"xgboost: last_k ({cfg.last_k}) exceeds the window ({window})")
        self.cfg, self.n_features, self.window, self.head = cfg, n_features, window, head
        self.booster: Any = None

    def flatten(self, x: np.ndarray) -> np.ndarray:
        """``[N, L, F] -> [N, k * F]``, the newest k rows."""
        k = self.cfg.last_k or self.window
        return np.ascontiguousarray(x[:, -k:, :].reshape(len(x), -1))

    def params(self, seed: int) -> dict:
        c = self.cfg
        p = {
            "objective": "reg:squarederror" if self.head == "regression" else "binary:logistic",
            "eval_metric": "rmse" if self.head == "regression" else "logloss",
            "tree_method": "hist",
            "device": _device(c.device),
            "max_depth": c.max_depth,
            "eta": c.learning_rate,
            "subsample": c.subsample,
            "colsample_bytree": c.colsample_bytree,
            "min_child_weight": c.min_child_weight,
            "lambda": c.reg_lambda,
            "seed": seed,
        }
        if c.n_jobs:
            p["nthread"] = c.n_jobs
        return p

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        seed: int = 0,
    ) -> XGBModel:
        import xgboost as xgb

        target = y if self.head == "regression" else (y > 0).astype(np.float32)
        dtrain = xgb.DMatrix(self.flatten(x), label=target)
        evals, stop = [], None
        if x_val is not None and y_val is not None and len(x_val):
            vt = y_val if self.head == "regression" else (y_val > 0).astype(np.float32)
            evals = [(xgb.DMatrix(self.flatten(x_val), label=vt), "val")]
            stop = self.cfg.early_stopping_rounds or None
        booster = xgb.train(
            self.params(seed),
            dtrain,
            num_boost_round=self.cfg.n_estimators,
            evals=evals,
            early_stopping_rounds=stop,
            verbose_eval=False,
        )
        if stop is not None:
            # Keep only the trees up to the best round, so every later predict uses them.
            booster = booster[: booster.best_iteration + 1]
        self.booster = booster
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Raw scores: the prediction (regression) or the logit margin (direction)."""
        import xgboost as xgb

        if self.booster is None:
            raise ValueError("xgboost model is not fitted; call fit() or load a bundle")
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        d = xgb.DMatrix(self.flatten(x))
        return self.booster.predict(d, output_margin=True).astype(np.float64)

    def to_bytes(self) -> bytes:
        """The model as XGBoost JSON (portable across versions and CPU/GPU)."""
        assert self.booster is not None
        return bytes(self.booster.save_raw("json"))

    def load_bytes(self, raw: bytes) -> XGBModel:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        booster.set_param({"device": _device(self.cfg.device)})
        self.booster = booster
        return self
