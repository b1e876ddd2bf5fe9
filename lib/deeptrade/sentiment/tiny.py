"""Random-weight BERT classifiers built locally, for tests, smoke runs and benchmarks.

They go through exactly the files and loaders a real FinBERT uses (``save_pretrained`` then
``from_pretrained(..., local_files_only=True)``), so nothing is downloaded and nothing is mocked;
only the weights are random, so their "sentiment" means nothing.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FINBERT_LABELS = {0: "positive", 1: "negative", 2: "neutral"}  # ProsusAI/finbert's id2label
TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    # Wider initial weights than BERT's 0.02 so random outputs are not all ~1/3 (sharper tests).
    "initializer_range": 0.5,
}


def build_vocab(texts: Iterable[str], *, size: int | None = None) -> list[str]:
    """WordPiece vocab: special tokens, characters (and their ``##`` forms), then words.

    Characters guarantee any ASCII text tokenises without [UNK]; ``size`` pads with filler
    entries to a realistic embedding size (e.g. bert-base's 30522).
    """
    words: dict[str, None] = {}
    for t in texts:
        for w in re.findall(r"\w+|[^\w\s]", t.lower()):
            words.setdefault(w, None)
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars if c.isalnum())]
    seen = set(vocab)
    vocab += [w for w in words if w not in seen]
    if size is not None:
        vocab += [f"[unused{i}]" for i in range(max(0, size - len(vocab)))]
    return vocab


def bert_tokenizer(vocab_file: str | Path) -> Any:
    """``BertTokenizerFast`` from a vocab file (transformers 5 renamed vocab_file to vocab)."""
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # lazy export

    params = inspect.signature(BertTokenizerFast.__init__).parameters
    key = "vocab_file" if "vocab_file" in params else "vocab"
    return BertTokenizerFast(**{key: str(vocab_file)})


def save_random_classifier(
    directory: str | Path,
    texts: Iterable[str],
    *,
    seed: int = 0,
    vocab_size: int | None = None,
    id2label: dict[int, str] | None = None,
    **bert_config: Any,
) -> Path:
    """Write tokenizer + random-weight ``BertForSequenceClassification`` to ``directory``.

    ``bert_config`` overrides ``BertConfig`` fields; pass ``**TINY_BERT`` for a model that runs
    in milliseconds, nothing for bert-base (FinBERT's architecture).
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(texts, size=vocab_size)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = bert_tokenizer(vocab_file)
    labels = id2label or FINBERT_LABELS
    config = BertConfig(
        vocab_size=len(vocab),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        **bert_config,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory
