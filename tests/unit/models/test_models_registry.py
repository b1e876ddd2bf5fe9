"""Model shapes, the name registry, config validation and window-only inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deeptrade.models import CONFIGS, MODELS, NEURAL, build_model, model_config
from deeptrade.models.ensemble import EnsembleConfig, StackedEnsemble, WeightedEnsemble
from deeptrade.models.transformer import sinusoidal_positions

torch.set_num_threads(1)
SMALL = {
    "lstm": {"hidden": 4},
    "transformer": {"d_model": 8, "heads": 2, "layers": 1, "ff": 16},
    "cnn": {"channels": 4, "layers": 2},
}


def test_registry_maps_names_to_classes_with_kw_only_configs() -> None:
    assert set(MODELS) == set(CONFIGS)
    assert {"lstm", "transformer", "cnn", "xgboost", "ensemble_mean", "ensemble_stack"} <= set(
        MODELS
    )
    for cfg in CONFIGS.values():
        assert dataclasses.is_dataclass(cfg)
        with pytest.raises(TypeError):
            cfg(1)  # keyword-only


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("attention", [True, False])
def test_neural_models_map_windows_to_one_score(name: str, attention: bool) -> None:
    params = dict(SMALL[name])
    if name == "lstm":
        params["attention"] = attention
    torch.manual_seed(0)
    m = build_model(name, model_config(name, params), n_features=3, window=12, head="regression")
    x = torch.randn(5, 12, 3)
    out = m(x)
    assert out.shape == (5,) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("name", NEURAL)
def test_a_window_score_depends_only_on_its_own_rows(name: str) -> None:
    m = build_model(
        name, model_config(name, SMALL[name]), n_features=3, window=6, head="regression"
    )
    m.eval()
    x = torch.randn(4, 6, 3)
    y = x.clone()
    y[2:] += 5.0  # other samples of the batch change
    with torch.no_grad():
        assert torch.equal(m(x)[:2], m(y)[:2])


def test_unknown_names_and_parameters_fail_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="Did you mean 'lstm'"):
        model_config("lstn")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['hiden'\]; valid: hidden=64"):
        model_config("lstm", {"hiden": 3})
    with pytest.raises(ValueError, match="heads"):
        model_config("transformer", {"d_model": 10, "heads": 3})
    with pytest.raises(ValueError, match="odd"):
        model_config("cnn", {"kernel": 4})
    with pytest.raises(ValueError, match="weights"):
        EnsembleConfig(members=[{"name": "lstm"}], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="nest models"):
        EnsembleConfig(members=[{"name": "ensemble_mean"}])
    with pytest.raises(ValueError, match="assembled"):
        build_model("ensemble_mean", EnsembleConfig(), n_features=2, window=3, head="regression")


def test_sinusoidal_positions() -> None:
    pe = sinusoidal_positions(10, 6)
    assert pe.shape == (10, 6)
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(10)), atol=1e-6)
    np.testing.assert_allclose(pe[:, 1], np.cos(np.arange(10)), atol=1e-6)
    np.testing.assert_allclose(pe[3, 4], np.sin(3 / 10000 ** (4 / 6)), atol=1e-6)


class _Const:
    def __init__(self, v: float) -> None:
        self.v = v

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.v) + x[:, -1, 0]


def test_weighted_ensemble_averages_member_scores() -> None:
    x = np.zeros((3, 2, 1))
    x[:, -1, 0] = [0.0, 1.0, 2.0]
    ens = WeightedEnsemble([_Const(1.0), _Const(4.0)], [2.0, 1.0])
    np.testing.assert_allclose(ens.scores(x), [2.0, 3.0, 4.0])


@pytest.mark.parametrize("head", ["regression", "direction"])
def test_xgboost_fits_last_k_rows_and_stacks(head: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6, 2)).astype(np.float32)
    y = (x[:, -1, 0] * 2 + 0.1 * rng.normal(size=300)).astype(np.float32)
    cfg = model_config("xgboost", {"last_k": 2, "n_estimators": 30, "n_jobs": 1, "device": "cpu"})
    m = build_model("xgboost", cfg, n_features=2, window=6, head=head).fit(
        x[:200], y[:200], x_val=x[200:], y_val=y[200:], seed=0
    )
    assert m.flatten(x).shape == (300, 4)
    s = m.scores(x[200:])
    assert np.corrcoef(s, y[200:])[0, 1] > 0.8
    # Stacking on two members' scores.
    ens_cfg = EnsembleConfig(meta={"n_estimators": 20, "n_jobs": 1, "device": "cpu"})
    meta = StackedEnsemble.new_meta(ens_cfg, 2, head)
    members = [m, _Const(0.0)]
    from deeptrade.models.ensemble import member_scores

    meta.fit(member_scores(members, x[:200])[:, None, :], y[:200], seed=0)
    stacked = StackedEnsemble(members, meta).scores(x[200:])
    assert stacked.shape == (100,) and np.corrcoef(stacked, y[200:])[0, 1] > 0.7
