"""Model bundles: everything needed to turn raw feature windows into predictions.

A bundle directory holds the weights (``weights.pt``: a torch state dict, or ``model.json``:
XGBoost JSON), and ``bundle.json`` with the model name and config, head, window, feature names
and feature-spec hash, the scaler fit on the training rows, the label definition (kind,
horizon) and its training scale, the training window (first/last timestamps) and the metrics.
Ensembles keep one sub-directory per member under ``members/`` and the stacker, if any, in
``stacker.json``. Backtest and live both call ``load_bundle(dir).predict(windows)``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from deeptrade.io.atomic import atomic_dir
from deeptrade.models import NEURAL, build_model, model_config
from deeptrade.models.base import TorchScorer
from deeptrade.models.ensemble import StackedEnsemble, WeightedEnsemble
from deeptrade.models.heads import Head, check_head, output
from deeptrade.models.xgb import XGBModel
from deeptrade.train.data import Scaler

BUNDLE_FILE = "bundle.json"
FORMAT_VERSION = 1
ENSEMBLES = ("ensemble_mean", "ensemble_stack")


@dataclass(kw_only=True)
class Member:
    """A trained model with the name and config it was built from."""

    name: str
    config: Any
    model: Any
    """``nn.Module`` for neural models, ``XGBModel`` for xgboost."""


def _config_dict(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    return dict(cfg)


def _write_model(directory: Path, m: Member) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    if m.name in NEURAL:
        state = {
            k: v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu()
            for k, v in m.model.state_dict().items()
        }
        torch.save(state, directory / "weights.pt")
        file = "weights.pt"
    elif m.name == "xgboost":
        (directory / "model.json").write_bytes(m.model.to_bytes())
        file = "model.json"
    else:
        raise ValueError(f"cannot save a {m.name!r} as a single model")
    return {"name": m.name, "config": _config_dict(m.config), "file": file}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ts(t: Any) -> str | None:
    return None if t is None else pd.Timestamp(t).isoformat()


def save_bundle(
    directory: str | os.PathLike[str],
    *,
    model: Member,
    head: Head,
    window: int,
    feature_names: list[str],
    scaler: Scaler,
    label: dict[str, Any],
    label_scale: float = 1.0,
    feature_spec_hash: str = "",
    train_window: tuple[Any, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    members: list[Member] | None = None,
    weights: list[float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically (the directory appears complete or not at all).

    ``model`` is the trained model; for ``ensemble_mean`` / ``ensemble_stack`` it carries the
    ensemble config (``model.model`` is ignored, or is the stacker ``XGBModel``) and
    ``members`` the trained members (all sharing this bundle's scaler and window).
    ``label`` is the label definition, e.g. ``{"kind": "forward_return", "horizon": 5}``.
    """
    check_head(head)
    if {"kind", "horizon"} - set(label):
        raise ValueError(f"label must have kind and horizon, got {label}")
    if len(feature_names) != len(scaler.mean):
        raise ValueError(
            f"{len(feature_names)} feature names but the scaler has {len(scaler.mean)}"
        )
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": {"name": model.name, "config": _config_dict(model.config)},
        "head": head,
        "window": int(window),
        "features": {"names": list(feature_names), "spec_hash": feature_spec_hash},
        "scaler": scaler.to_dict(),
        "label": {**label, "scale": float(label_scale)},
        "train_window": {
            "first": _ts(train_window[0]) if train_window else None,
            "last": _ts(train_window[1]) if train_window else None,
        },
        "metrics": metrics or {},
        "versions": {p: _version(p) for p in ("deeptrade", "torch", "xgboost", "numpy")},
        "created_at": time.time(),
        **(extra or {}),
    }
    with atomic_dir(directory) as tmp:
        if model.name in ENSEMBLES:
            if not members:
                raise ValueError(f"{model.name} bundle needs its trained members")
            meta["members"] = [
                {**_write_model(tmp / "members" / str(i), m), "dir": f"members/{i}"}
                for i, m in enumerate(members)
            ]
            if model.name == "ensemble_mean":
                meta["weights"] = list(weights) if weights is not None else None
            else:
                if not isinstance(model.model, XGBModel):
                    raise ValueError(
                        "ensemble_stack bundle needs the fitted stacker as model.model"
                    )
                (tmp / "stacker.json").write_bytes(model.model.to_bytes())
        else:
            meta["file"] = _write_model(tmp, model)["file"]
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=1, allow_nan=True))
    return Path(directory)


def _load_model(
    directory: Path,
    name: str,
    config: dict[str, Any],
    *,
    n_features: int,
    window: int,
    head: Head,
    device: str,
) -> Any:
    cfg = model_config(name, config)
    model = build_model(name, cfg, n_features=n_features, window=window, head=head)
    if name in NEURAL:
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return TorchScorer(model.to(device).eval(), device=device)
    return model.load_bytes((directory / "model.json").read_bytes())


@dataclass(kw_only=True)
class Bundle:
    """A loaded bundle; ``predict`` takes raw (unscaled) feature windows."""

    path: Path
    meta: dict[str, Any]
    head: Head
    window: int
    feature_names: list[str]
    scaler: Scaler
    label_scale: float
    scorer: Any
    """Anything with ``scores(scaled_windows) -> np.ndarray``."""

    @property
    def label(self) -> dict[str, Any]:
        return self.meta["label"]

    @property
    def horizon(self) -> int:
        return int(self.meta["label"]["horizon"])

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows ``[N, window, n_features]`` (or one ``[window, n_features]``), features
        in ``feature_names`` order -> predicted label (regression) or P(label > 0) (direction),
        float64 ``[N]``."""
        x = np.asarray(windows)
        if x.ndim == 2:
            x = x[None]
        want = (self.window, len(self.feature_names))
        if x.ndim != 3 or x.shape[1:] != want:
            raise ValueError(
                f"windows must have shape [N, {want[0]}, {want[1]}] (window, features in bundle "
                f"order: {self.feature_names[:3]}...), got {x.shape}"
            )
        scores = self.scorer.scores(self.scaler.transform(x))
        if self.head == "regression":
            scores = scores * self.label_scale
        return output(self.head, scores)

    def predict_frame(self, frame: pd.DataFrame, *, chunk: int = 8192) -> pd.Series:
        """Predictions for every row of a features frame (the window ending at that row),
        indexed by timestamp; NaN for rows without a full window or in warm-up."""
        missing = [c for c in self.feature_names if c not in frame.columns]
        if missing:
            raise ValueError(f"features frame lacks the bundle's columns {missing}")
        X = np.ascontiguousarray(frame[self.feature_names].to_numpy(np.float32))
        out = np.full(len(frame), np.nan)
        if len(frame) >= self.window:
            views = sliding_window_view(X, self.window, axis=0).transpose(0, 2, 1)
            preds = [self.predict(views[i : i + chunk]) for i in range(0, len(views), chunk)]
            out[self.window - 1 :] = np.concatenate(preds)
        if "warmup" in frame.columns:
            out[frame["warmup"].to_numpy(bool)] = np.nan
        index = (
            pd.DatetimeIndex(frame["timestamp"]) if "timestamp" in frame.columns else frame.index
        )
        return pd.Series(out, index=index, name="prediction")


def load_bundle(directory: str | os.PathLike[str], *, device: str = "cpu") -> Bundle:
    """Load a bundle written by ``save_bundle``."""
    path = Path(directory)
    meta_path = path / BUNDLE_FILE
    if not meta_path.is_file():
        raise ValueError(
            f"{path} is not a model bundle (no {BUNDLE_FILE}); point at a train artifact's bundle"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: bundle format {meta.get('format')} is not {FORMAT_VERSION}; retrain"
        )
    head = check_head(meta["head"])
    window = int(meta["window"])
    names = list(meta["features"]["names"])
    name = meta["model"]["name"]

    def load(directory: Path, model_name: str, config: dict[str, Any]) -> Any:
        return _load_model(
            directory,
            model_name,
            config,
            n_features=len(names),
            window=window,
            head=head,
            device=device,
        )

    if name in ENSEMBLES:
        members = [load(path / m["dir"], m["name"], m["config"]) for m in meta["members"]]
        if name == "ensemble_mean":
            scorer: Any = WeightedEnsemble(members, meta.get("weights"))
        else:
            ens_cfg = model_config(name, meta["model"]["config"])
            stacker = StackedEnsemble.new_meta(ens_cfg, len(members), head)
            scorer = StackedEnsemble(
                members, stacker.load_bytes((path / "stacker.json").read_bytes())
            )
    else:
        scorer = load(path, name, meta["model"]["config"])
    return Bundle(
        path=path,
        meta=meta,
        head=head,
        window=window,
        feature_names=names,
        scaler=Scaler.from_dict(meta["scaler"]),
        label_scale=float(meta["label"].get("scale", 1.0)),
        scorer=scorer,
    )
