"""Shared test helpers for the sentiment tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from deeptrade.sentiment.scorer import ScorerConfig

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "sentiment"
HEADLINES = ASSETS / "headlines.jsonl"


def small_batches(model_dir: Path, **overrides: object) -> ScorerConfig:
    """A config whose token budget forces several buckets and batches on 40 headlines."""
    fields: dict[str, object] = {
        "name_or_path": str(model_dir),
        "token_budget": 64,
        "max_batch_size": 4,
        "device": "cpu",
    }
    return ScorerConfig(**{**fields, **overrides})  # type: ignore[arg-type]
