"""Fixtures: the hand-labelled headlines and a tiny random BERT saved like a real FinBERT."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from deeptrade.sentiment.news import read_news
from deeptrade.sentiment.scorer import SentimentScorer
from deeptrade.sentiment.tiny import TINY_BERT, save_random_classifier
from tests.unit.sentiment.helpers import HEADLINES, small_batches


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models on a shared 2-core box: a second OpenMP thread only adds barrier waits
    (measured 20x slower under load), so these tests run torch single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def news_items() -> pd.DataFrame:
    return read_news([HEADLINES]).items


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, news_items: pd.DataFrame) -> Path:
    texts = list(news_items["headline"]) + list(news_items["summary"])
    return save_random_classifier(tmp_path_factory.mktemp("tiny_finbert"), texts, **TINY_BERT)


@pytest.fixture(scope="session")
def scorer(tiny_model_dir: Path) -> SentimentScorer:
    return SentimentScorer(small_batches(tiny_model_dir))
