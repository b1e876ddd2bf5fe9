"""The scorer: real offline loading, label mapping, batching equivalence, OOM back-off, rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from deeptrade.sentiment.scorer import (
    SCORE_COLUMNS,
    ScorerConfig,
    SentimentScorer,
    label_order,
    model_hash,
    resolve_precision,
)
from deeptrade.sentiment.tiny import TINY_BERT, save_random_classifier
from tests.unit.sentiment.helpers import small_batches


def _reference_proba(model_dir: Path, texts: list[str], max_length: int = 64) -> np.ndarray:
    """Plain transformers, one text at a time, no padding: the ground truth for batching."""
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    model = model.float().eval()
    order = label_order(model.config.id2label)
    out = []
    with torch.no_grad():
        for t in texts:
            enc = tok(t, truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            out.append(torch.softmax(logits.float(), -1)[0, order].numpy())
    return np.stack(out)


def test_bucketed_batches_match_one_by_one(scorer: SentimentScorer, news_items, tiny_model_dir):
    texts = list(news_items["headline"])
    lengths = [len(x) for x in scorer.tokenize(texts)]
    plan = scorer.plan(lengths)
    assert len({length for length, _ in plan}) >= 2 and len(plan) > 5  # really bucketed
    got = scorer.predict_proba(texts)
    want = _reference_proba(tiny_model_dir, texts)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.ptp(got[:, 0]) > 0.05  # the tiny model's outputs differ enough to mean something
    loose = SentimentScorer(small_batches(tiny_model_dir, fixed_shapes=False, token_budget=512))
    np.testing.assert_allclose(loose.predict_proba(texts), want, atol=1e-5, rtol=0)


def test_plan_restores_order_and_respects_budget(scorer: SentimentScorer) -> None:
    lengths = [5, 17, 9, 30, 12, 64, 3, 25]
    plan = scorer.plan(lengths)
    seen = np.concatenate([idx for _, idx in plan])
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for length, idx in plan:
        assert length % 8 == 0 and len(idx) * length <= scorer.config.token_budget
        assert all(lengths[i] <= length for i in idx)
    assert [length for length, _ in plan] == sorted((length for length, _ in plan), reverse=True)


def test_fixed_shapes_make_results_independent_of_neighbours(scorer, news_items) -> None:
    texts = list(news_items["headline"])
    full = scorer.predict_proba(texts)
    subset = scorer.predict_proba(texts[::3])
    assert np.array_equal(full[::3], subset)  # bit for bit, not just close


def test_truncation_to_max_length(tiny_model_dir: Path) -> None:
    s = SentimentScorer(small_batches(tiny_model_dir, max_length=8))
    long_text = "Apple beats estimates " * 20
    assert len(s.tokenize([long_text])[0]) == 8
    assert s.predict_proba([long_text]).shape == (1, 3)


def test_oom_backoff_halves_the_batch_and_gives_the_same_answer(tiny_model_dir, news_items):
    texts = list(news_items["headline"])
    shapes: list[tuple[int, int]] = []

    def hook(rows: int, length: int) -> None:
        shapes.append((rows, length))
        if rows > 1:
            raise torch.OutOfMemoryError("injected: CUDA out of memory")

    s = SentimentScorer(small_batches(tiny_model_dir), fault_hook=hook)
    got = s.predict_proba(texts)
    np.testing.assert_allclose(got, _reference_proba(tiny_model_dir, texts), atol=1e-5)
    assert (4, 16) in shapes and (2, 16) in shapes and (1, 16) in shapes
    after = shapes[shapes.index((1, 16)) :]
    assert max(r for r, length in after if length == 16) == 1  # the lower cap sticks

    def always(rows: int, length: int) -> None:
        raise torch.OutOfMemoryError("injected")

    with pytest.raises(RuntimeError, match="out of memory scoring a single text"):
        SentimentScorer(small_batches(tiny_model_dir), fault_hook=always).predict_proba(texts)


def test_score_rows_per_symbol(scorer: SentimentScorer, news_items: pd.DataFrame) -> None:
    scores = scorer.score(news_items)
    assert list(scores.columns) == SCORE_COLUMNS
    n_rows = sum(max(1, len(s)) for s in news_items["symbols"])
    assert len(scores) == n_rows == 41  # h006 has two symbols, 4 items have none
    h006 = scores[scores["id"] == "h006"]
    assert list(h006["symbol"]) == ["AAPL", "MSFT"]
    assert h006["p_positive"].nunique() == 1
    assert scores.loc[scores["id"] == "h007", "symbol"].isna().all()
    p = scores[["p_positive", "p_negative", "p_neutral"]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(scores["score"], p[:, 0] - p[:, 1])
    assert (scores["label"] == np.array(["positive", "negative", "neutral"])[p.argmax(1)]).all()
    assert (scores["model_hash"] == scorer.model_hash).all()
    assert str(scores["created_at"].dtype) == "datetime64[ns, UTC]"


def test_headline_summary_text(tiny_model_dir: Path, news_items: pd.DataFrame) -> None:
    s = SentimentScorer(small_batches(tiny_model_dir, text="headline_summary"))
    texts = s.texts(news_items.head(2))
    assert texts[0] == (
        "Apple beats quarterly revenue estimates on strong iPhone demand. "
        "Revenue rose 8% year over year."
    )


def test_labels_read_from_id2label_in_any_order_and_case(tmp_path: Path, news_items) -> None:
    texts = list(news_items["headline"])
    d = save_random_classifier(
        tmp_path / "m",
        texts,
        id2label={0: "NEUTRAL", 1: "Positive", 2: "negative"},
        **TINY_BERT,
    )
    s = SentimentScorer(small_batches(d))
    model = AutoModelForSequenceClassification.from_pretrained(d, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(d, local_files_only=True)
    with torch.no_grad():
        raw = torch.softmax(model(**tok(texts[0], return_tensors="pt")).logits, -1)[0].numpy()
    got = s.predict_proba(texts[:1])[0]
    np.testing.assert_allclose(got, raw[[1, 2, 0]], atol=1e-6)  # positive, negative, neutral


def test_unmappable_labels_raise(tmp_path: Path, news_items) -> None:
    d = save_random_classifier(
        tmp_path / "m",
        list(news_items["headline"]),
        id2label={0: "LABEL_0", 1: "LABEL_1", 2: "X"},
        **TINY_BERT,
    )
    with pytest.raises(ValueError, match=r"cannot map the model's labels.*id2label"):
        SentimentScorer(small_batches(d))
    with pytest.raises(ValueError, match="cannot map"):
        label_order({0: "positive", 1: "positive", 2: "negative"})


def test_missing_weights_say_how_to_stage(tmp_path: Path, tiny_model_dir: Path, monkeypatch):
    with pytest.raises(ValueError, match=r"does not exist.*hf download .*model\.name_or_path="):
        SentimentScorer(ScorerConfig(name_or_path=str(tmp_path / "nowhere"), device="cpu"))
    partial = tmp_path / "partial"
    shutil.copytree(tiny_model_dir, partial)
    (partial / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"cannot load the sentiment model .*hf download"):
        SentimentScorer(ScorerConfig(name_or_path=str(partial), device="cpu"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(ValueError, match=r"not in the local Hugging Face cache.*hf download"):
        SentimentScorer(ScorerConfig(device="cpu"))  # the default ProsusAI/finbert


def test_model_hash_covers_config_and_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert model_hash(copy) == model_hash(tiny_model_dir)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "id2label": {"0": "x"}}))
    assert model_hash(copy) != model_hash(tiny_model_dir)
    other = save_random_classifier(tmp_path / "seed1", ["a b c"], seed=1, **TINY_BERT)
    same_arch = save_random_classifier(tmp_path / "seed0", ["a b c"], seed=0, **TINY_BERT)
    assert model_hash(other) != model_hash(same_arch)


def test_cpu_int8_and_bf16_run_and_stay_close(tiny_model_dir: Path, news_items) -> None:
    texts = list(news_items["headline"])
    fp32 = SentimentScorer(small_batches(tiny_model_dir)).predict_proba(texts)
    # The tiny model's wide random weights exaggerate rounding; the bench measures the real
    # agreement on a bert-base-sized model. Here: the paths run and track fp32.
    for precision in ("int8", "bf16"):
        s = SentimentScorer(small_batches(tiny_model_dir, precision=precision))
        assert s.precision == precision
        got = s.predict_proba(texts)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        assert (got.argmax(1) == fp32.argmax(1)).mean() >= 0.9
        assert np.corrcoef(got[:, 0], fp32[:, 0])[0, 1] > 0.9


def test_precision_rules() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="token_budget=10 cannot hold"):
        ScorerConfig(token_budget=10, max_length=64)
    with pytest.raises(ValueError, match="precision"):
        ScorerConfig(precision="fp8")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_precision_follows_compute_capability(tiny_model_dir: Path, news_items) -> None:
    major, _ = torch.cuda.get_device_capability()
    s = SentimentScorer(small_batches(tiny_model_dir, device="cuda"))
    assert s.precision == ("bf16" if major >= 8 else "fp16")
    texts = list(news_items["headline"])
    np.testing.assert_allclose(
        s.predict_proba(texts), _reference_proba(tiny_model_dir, texts), atol=2e-2
    )
