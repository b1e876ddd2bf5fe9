"""FinBERT-style sentiment scoring, offline and fast by construction.

Speed comes from doing less, not from tricks: texts are tokenised once without padding, grouped
into length buckets (multiples of ``length_multiple`` tokens, so padding stays small), and each
bucket is cut into batches that hold at most ``token_budget`` padded tokens; results are put back
in input order. Forward passes run under ``torch.inference_mode()``; on CUDA the weights are cast
to fp16 below compute capability 8.0 (V100) and bf16 from 8.0 (A100/H100/GH200); on CPU bf16
autocast or int8 dynamic quantisation are opt-in (they change results slightly, see the bench).

``fixed_shapes`` (default on) pads the last batch of a bucket with copies of a real row up to the
bucket's usual batch size, so every forward pass for a bucket has the same shape. Dense kernels
then do the same arithmetic for an item whatever its neighbours are, which is what makes a
sharded or resumed run reproduce an unsharded one bit for bit on the same machine (an OOM
back-off, which changes shapes, is the one exception and is logged).

Probabilities are always reported in the order (positive, negative, neutral), whatever the
model's own label order; that order is read from ``config.id2label``.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

log = logging.getLogger(__name__)

LABELS = ("positive", "negative", "neutral")
SCORE_COLUMNS = [
    "id",
    "created_at",
    "symbol",
    "p_positive",
    "p_negative",
    "p_neutral",
    "label",
    "score",
    "model_hash",
]
_LABEL_ALIASES = {
    "positive": "positive",
    "pos": "positive",
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}
_PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")


@dataclass(kw_only=True)
class ScorerConfig:
    """Which model scores the news and how batches are formed."""

    name_or_path: str = "ProsusAI/finbert"
    """Local model directory, or a Hugging Face id already in the local HF cache (never fetched)."""
    text: Literal["headline", "headline_summary"] = "headline"
    """What is scored: the headline, or the headline followed by the summary."""
    max_length: int = 64
    """Tokens per text, special tokens included; longer texts are truncated."""
    token_budget: int = 2048
    """Padded tokens per forward pass (batch rows x bucket length). 2048 saturates a CPU; on a
    GPU use e.g. 32768 (V100 fp16, FinBERT) with a matching max_batch_size."""
    max_batch_size: int = 64
    """Upper bound on rows per forward pass (also the most filler rows fixed_shapes can add per
    bucket and call, so keep calls, i.e. shard parts, much larger than buckets x this)."""
    length_multiple: int = 8
    """Bucket granularity in tokens: padding per text is below this (8 suits tensor cores)."""
    fixed_shapes: bool = True
    """Pad each bucket's last batch to the bucket's batch size: results independent of batching."""
    device: str = "auto"
    """"auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N"."""
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    """auto: fp16 on CUDA < 8.0, bf16 on CUDA >= 8.0, fp32 on CPU. int8 (CPU only): dynamic
    quantisation of Linear layers. bf16 on CPU: autocast."""
    num_threads: int | None = None
    """CPU threads for torch; None keeps torch's default (set it to the Slurm cpus-per-task)."""

    def __post_init__(self) -> None:
        if self.text not in ("headline", "headline_summary"):
            raise ValueError(f"text must be 'headline' or 'headline_summary', got {self.text!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if self.max_length < 4:
            raise ValueError(f"max_length must be >= 4 tokens, got {self.max_length}")
        if self.length_multiple < 1 or self.max_batch_size < 1:
            raise ValueError("length_multiple and max_batch_size must be >= 1")
        if self.token_budget < self.max_length:
            raise ValueError(
                f"token_budget={self.token_budget} cannot hold one text of max_length="
                f"{self.max_length} tokens; raise token_budget or lower max_length"
            )
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


def staging_hint(name_or_path: str) -> str:
    """How to put a model where the offline loader finds it."""
    repo = name_or_path if not Path(name_or_path).is_absolute() else "ProsusAI/finbert"
    return (
        f"Stage it on a machine with network access, e.g. `hf download {repo} --local-dir "
        "/shared/models/finbert` (`huggingface-cli download ...` on older huggingface_hub), "
        "copy that directory to shared storage, then run with "
        "`model.name_or_path=/shared/models/finbert`. Nothing is downloaded at run time."
    )


def model_directory(name_or_path: str) -> Path:
    """The local directory holding the model files (a path, or the HF cache snapshot)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or name_or_path.startswith("."):
        raise ValueError(f"model directory {path} does not exist. " + staging_hint(name_or_path))
    from transformers.utils import cached_file

    try:
        config_file = cached_file(name_or_path, "config.json", local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"model {name_or_path!r} is not in the local Hugging Face cache "
            f"({type(e).__name__}: {_one_line(e)}). " + staging_hint(name_or_path)
        ) from None
    if config_file is None:
        raise ValueError(
            f"model {name_or_path!r} has no config.json. " + staging_hint(name_or_path)
        )
    return Path(config_file).parent


def model_hash(directory: str | Path) -> str:
    """sha256 over config.json and every weight file (names and bytes), in name order."""
    directory = Path(directory)
    files = [directory / "config.json"]
    weights = sorted({p for g in _WEIGHT_GLOBS for p in directory.glob(g)})
    if not weights:
        raise ValueError(f"{directory}: no weight files ({', '.join(_WEIGHT_GLOBS)})")
    h = hashlib.sha256()
    for f in files + weights:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:  # follows HF cache symlinks to the blobs
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def label_order(id2label: dict[Any, str]) -> list[int]:
    """Model output indices of (positive, negative, neutral), read from ``config.id2label``."""
    found: dict[str, int] = {}
    for idx, name in id2label.items():
        canon = _LABEL_ALIASES.get(str(name).strip().casefold())
        if canon is None or canon in found:
            break
        found[canon] = int(idx)
    if len(id2label) != 3 or set(found) != set(LABELS):
        raise ValueError(
            f"cannot map the model's labels {dict(id2label)} to positive/negative/neutral; "
            "a sentiment model needs exactly those three labels in config.json's id2label "
            '(e.g. {"0": "positive", "1": "negative", "2": "neutral"})'
        )
    return [found[name] for name in LABELS]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device=cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision: fp32, fp16, bf16 or int8 (see ``ScorerConfig.precision``)."""
    if device.type == "cuda":
        # torch.cuda.is_bf16_supported() answers True on V100 (emulated, slow): ask the hardware.
        major, _ = torch.cuda.get_device_capability(device)
        if precision == "auto":
            return "bf16" if major >= 8 else "fp16"
        if precision == "bf16" and major < 8:
            raise ValueError(
                f"bf16 needs compute capability >= 8.0 (this GPU: {major}.x); use fp16"
            )
        if precision == "int8":
            raise ValueError("precision=int8 is CPU only (dynamic quantisation); use fp16/bf16")
        return precision
    if precision == "auto":
        return "fp32"
    if precision == "fp16":
        raise ValueError("precision=fp16 is for CUDA; on CPU use fp32, bf16 or int8")
    return precision


class SentimentScorer:
    """Loads a sequence classifier offline and turns texts into class probabilities.

    ``fault_hook`` is a test seam: it is called with ``(rows, length)`` before every forward
    pass and may raise ``torch.OutOfMemoryError`` to exercise the OOM back-off on CPU.
    """

    def __init__(
        self,
        config: ScorerConfig,
        *,
        fault_hook: Callable[[int, int], None] | None = None,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.config = config
        self._fault_hook = fault_hook
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        directory = model_directory(config.name_or_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                directory, local_files_only=True
            )
        except (OSError, ValueError) as e:
            raise ValueError(
                f"cannot load the sentiment model from {directory} "
                f"({type(e).__name__}: {_one_line(e)}). " + staging_hint(config.name_or_path)
            ) from None
        self.model_hash = model_hash(directory)
        self._order = label_order(model.config.id2label)
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"{directory}: the tokenizer has no pad token; set one in its config")
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        model = model.float().eval()
        if self.precision == "int8":
            # torch.ao's eager quantisation is deprecated in favour of torchao, which is not a
            # dependency; it still works on torch 2.13 and is what the bench measured.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*quantiz", category=UserWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, torch.qint8
                )
        elif self.device.type == "cuda" and self.precision in ("fp16", "bf16"):
            model = model.to(torch.float16 if self.precision == "fp16" else torch.bfloat16)
        self.model = model.to(self.device)
        self._row_cap: dict[int, int] = {}
        log.info(
            "sentiment model %s (hash %s) on %s, precision %s, labels %s, token budget %d",
            directory,
            self.model_hash[:12],
            self.device,
            self.precision,
            dict(model.config.id2label),
            config.token_budget,
        )

    # -- batching ------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.config.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return enc["input_ids"]

    def bucket_length(self, n_tokens: int) -> int:
        m = self.config.length_multiple
        return min(self.config.max_length, -(-n_tokens // m) * m)

    def rows_for(self, length: int) -> int:
        rows = min(self.config.max_batch_size, self.config.token_budget // length)
        return max(1, min(rows, self._row_cap.get(length, rows)))

    def plan(self, lengths: Sequence[int]) -> list[tuple[int, np.ndarray]]:
        """Batches as (bucket length, item indices): longest bucket first, input order inside."""
        buckets = np.array([self.bucket_length(n) for n in lengths], dtype=np.int64)
        batches: list[tuple[int, np.ndarray]] = []
        for length in sorted(set(buckets.tolist()), reverse=True):
            idx = np.flatnonzero(buckets == length)
            rows = self.rows_for(length)
            batches.extend((length, idx[i : i + rows]) for i in range(0, len(idx), rows))
        return batches

    # -- inference -----------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (n, 3), columns (positive, negative, neutral), input order."""
        out = np.empty((len(texts), 3), dtype=np.float32)
        if not len(texts):
            return out
        ids = self.tokenize(texts)
        for length, idx in self.plan([len(x) for x in ids]):
            out[idx] = self._score_rows([ids[i] for i in idx], length)
        return out

    def _score_rows(self, seqs: list[list[int]], length: int) -> np.ndarray:
        rows = self.rows_for(length)
        if len(seqs) > rows:  # after an OOM back-off lowered this bucket's cap
            return np.concatenate(
                [self._score_rows(seqs[i : i + rows], length) for i in range(0, len(seqs), rows)]
            )
        n_rows = rows if self.config.fixed_shapes else len(seqs)
        input_ids = np.full((n_rows, length), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((n_rows, length), dtype=np.int64)
        for r in range(n_rows):
            s = seqs[r] if r < len(seqs) else seqs[0]  # filler rows copy a real one
            input_ids[r, : len(s)] = s
            mask[r, : len(s)] = 1
        try:
            if self._fault_hook is not None:
                self._fault_hook(n_rows, length)
            return self._forward(input_ids, mask)[: len(seqs)]
        except torch.OutOfMemoryError as e:
            if n_rows == 1:
                raise RuntimeError(
                    f"out of memory scoring a single text of {length} tokens on {self.device}; "
                    "lower max_length or use a device with more memory"
                ) from e
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self._row_cap[length] = max(1, n_rows // 2)
            log.warning(
                "out of memory at %d x %d tokens; retrying with %d rows (results may now differ "
                "from an un-halved run in the last float bits)",
                n_rows,
                length,
                self._row_cap[length],
            )
            return self._score_rows(seqs, length)

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
        a = torch.from_numpy(mask).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.device.type == "cpu" and self.precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = self.model(input_ids=x, attention_mask=a).logits
            else:
                logits = self.model(input_ids=x, attention_mask=a).logits
            probs = torch.softmax(logits.float(), dim=-1)[:, self._order]
        return probs.cpu().numpy()

    # -- tables --------------------------------------------------------------------------------
    def texts(self, items: pd.DataFrame) -> list[str]:
        headlines = items["headline"].tolist()
        if self.config.text == "headline":
            return headlines
        return [_join(h, s) for h, s in zip(headlines, items["summary"].tolist(), strict=True)]

    def score(self, items: pd.DataFrame) -> pd.DataFrame:
        """News items (``news.NEWS_COLUMNS``) -> one row per (item, symbol), ``SCORE_COLUMNS``."""
        return explode_scores(items, self.predict_proba(self.texts(items)), self.model_hash)


def _join(headline: str, summary: str) -> str:
    if not summary:
        return headline
    sep = " " if headline.endswith((".", "!", "?")) else ". "
    return headline + sep + summary


def explode_scores(items: pd.DataFrame, probs: np.ndarray, model_hash: str) -> pd.DataFrame:
    """One row per symbol of each item (symbol missing for items without symbols)."""
    assert probs.shape == (len(items), 3)
    symbols = [list(s) if len(s) else [None] for s in items["symbols"]]
    rep = np.repeat(np.arange(len(items)), [len(s) for s in symbols]).astype(np.int64)
    p = probs.astype(np.float64)[rep]
    out = items[["id", "created_at"]].iloc[rep].reset_index(drop=True)
    out["symbol"] = pd.Series([s for ss in symbols for s in ss], dtype="str")
    out["p_positive"], out["p_negative"], out["p_neutral"] = p[:, 0], p[:, 1], p[:, 2]
    out["label"] = pd.Series(np.array(LABELS)[p.argmax(axis=1)], dtype="str")
    out["score"] = p[:, 0] - p[:, 1]
    out["model_hash"] = pd.Series([model_hash] * len(out), dtype="str")
    return out


def sort_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The canonical order of a scores table: by id, then symbol (missing symbol first)."""
    return scores.sort_values(["id", "symbol"], na_position="first", kind="stable").reset_index(
        drop=True
    )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
