"""Sentiment scoring throughput: deeptrade's scorer vs the transformers pipeline, same run.

Model: FinBERT's architecture (``BertConfig()`` = bert-base, 3 labels) with random weights and a
locally built 30,522-entry WordPiece vocab; nothing is downloaded. Texts: synthetic
headline-like strings of 8-30 words. Anchor: ``pipeline("text-classification", top_k=None)``
with its defaults, i.e. ``batch_size=1`` (the honest out-of-the-box baseline); the pipeline
with ``batch_size=32`` is reported too. Every deeptrade variant is timed on the same texts and
compared with the anchor's fp32 argmax ("agreement").

Random weights give nearly uniform probabilities (top-2 margins ~1e-3), so argmax agreement
here is a harsh test of reduced precision: a trained FinBERT has far larger margins.

    python bench/sentiment.py            # 1,024 texts, ~3-5 min on 2 shared cores
    python bench/sentiment.py --quick    # 128 texts

Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

_COMPANIES = """Apple Microsoft Tesla Amazon Alphabet Meta Nvidia JPMorgan Goldman Exxon Chevron
Pfizer Moderna Boeing Intel AMD Netflix Disney Walmart Target Costco Oracle Salesforce Adobe
Qualcomm Broadcom Citigroup Visa Mastercard PayPal Starbucks Nike Ford GM Uber Airbnb"""
COMPANIES = _COMPANIES.split()
VERBS = [
    "beats quarterly estimates",
    "misses revenue forecasts",
    "raises full-year guidance",
    "cuts outlook",
    "announces share buyback",
    "faces regulatory probe",
    "recalls vehicles",
    "reports record profit",
    "swings to a loss",
    "shares jump",
    "shares slide",
    "names new chief executive",
    "to acquire rival",
    "settles lawsuit",
    "lays off staff",
    "wins government contract",
    "declares quarterly dividend",
    "schedules earnings call",
    "upgraded to buy",
    "downgraded to sell",
]
CLAUSES = [
    "as demand weakens in China",
    "on strong cloud growth",
    "after analysts raise price targets",
    "amid supply chain disruptions",
    "despite higher interest rates",
    "as margins shrink",
    "ahead of the Federal Reserve meeting",
    "following a weak holiday season",
    "while investors await inflation data",
    "after the close on Tuesday",
    "in a deal valued at {n} billion dollars",
    "with revenue up {p} percent",
    "as costs rise {p} percent",
    "sending the stock {p} percent higher",
    "according to people familiar with the matter",
    "the company said in a statement",
]


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Headline-like strings of 8-30 words (uniform target length)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        target = rng.randint(8, 30)
        words = f"{rng.choice(COMPANIES)} {rng.choice(VERBS)}".split()
        while len(words) < target:
            clause = rng.choice(CLAUSES).format(n=rng.randint(1, 90), p=rng.randint(1, 40))
            words += clause.split()
        texts.append(" ".join(words[:target]))
    return texts


def _probs_from_pipeline(out: list[Any], labels: tuple[str, ...]) -> np.ndarray:
    rows = []
    for item in out:
        scores = {d["label"].casefold(): d["score"] for d in item}
        rows.append([scores[name] for name in labels])
    return np.asarray(rows, dtype=np.float64)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps({"bench": "sentiment", **record}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 texts instead of 1,024")
    parser.add_argument("--n", type=int, default=None, help="number of texts")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--variants",
        default="fp32,fp32-loose,bf16,int8",
        help="deeptrade variants: a precision (fp32, bf16, int8), '-loose' = fixed_shapes off",
    )
    parser.add_argument(
        "--no-pipeline-bs32", action="store_true", help="skip the batch_size=32 pipeline"
    )
    args = parser.parse_args(argv)
    n = args.n or (128 if args.quick else 1024)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from deeptrade.sentiment.scorer import LABELS, ScorerConfig, SentimentScorer
    from deeptrade.sentiment.tiny import save_random_classifier

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    texts = make_texts(n)
    warm = make_texts(16, seed=1)

    with tempfile.TemporaryDirectory(prefix="bench-sentiment-") as tmp:
        model_dir = save_random_classifier(Path(tmp) / "bert-base", texts, vocab_size=30522)
        tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        lengths = [len(x) for x in tok(texts)["input_ids"]]
        emit(
            {
                "setup": True,
                "texts": n,
                "tokens_min": min(lengths),
                "tokens_mean": round(float(np.mean(lengths)), 1),
                "tokens_max": max(lengths),
                "model": "BertConfig() (bert-base, 110M params), 3 labels, random weights",
                "vocab": tok.vocab_size,
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "load_avg_1m": os.getloadavg()[0],
                "note": "shared 2-core machine: timings are noisy",
            }
        )

        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True
        ).eval()
        anchor_probs: np.ndarray | None = None
        anchor_tps = bs32_tps = anchor_cpu = float("nan")
        for batch_size in (1, 32):
            if batch_size == 32 and args.no_pipeline_bs32:
                continue
            pipe = pipeline(
                "text-classification", model=model, tokenizer=tok, top_k=None, device=-1
            )
            kwargs = {} if batch_size == 1 else {"batch_size": batch_size}
            pipe(warm, **kwargs)
            t0, c0 = time.perf_counter(), time.process_time()
            out = pipe(texts, **kwargs)
            seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
            probs = _probs_from_pipeline(out, LABELS)
            record = {
                "impl": "transformers.pipeline",
                "settings": "text-classification, top_k=None, device=-1, fp32"
                + (", batch_size default (1)" if batch_size == 1 else ", batch_size=32"),
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu_s, 3),
                "texts_per_s": round(n / seconds, 2),
            }
            if anchor_probs is None:
                anchor_probs, anchor_tps, anchor_cpu = probs, n / seconds, cpu_s
                record["anchor"] = True
            else:
                bs32_tps = n / seconds
                record["speedup_vs_anchor"] = round(bs32_tps / anchor_tps, 2)
                record["argmax_agreement"] = float(
                    (probs.argmax(1) == anchor_probs.argmax(1)).mean()
                )
            emit(record)
        del model
        assert anchor_probs is not None
        margins = np.sort(anchor_probs, axis=1)
        emit({"anchor_top2_margin_median": float(np.median(margins[:, -1] - margins[:, -2]))})

        best = None
        for variant in args.variants.split(","):
            precision, _, loose = variant.partition("-")
            config = ScorerConfig(
                name_or_path=str(model_dir),
                device="cpu",
                precision=precision,  # type: ignore[arg-type]
                fixed_shapes=loose != "loose",
            )
            scorer = SentimentScorer(config)
            scorer.predict_proba(warm)
            t0, c0 = time.perf_counter(), time.process_time()
            probs = scorer.predict_proba(texts).astype(np.float64)
            seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
            agreement = float((probs.argmax(1) == anchor_probs.argmax(1)).mean())
            speedup = n / seconds / anchor_tps
            emit(
                {
                    "impl": "deeptrade.SentimentScorer",
                    "variant": variant,
                    "precision": precision,
                    "settings": {
                        "token_budget": config.token_budget,
                        "max_batch_size": config.max_batch_size,
                        "length_multiple": config.length_multiple,
                        "fixed_shapes": config.fixed_shapes,
                        "max_length": config.max_length,
                    },
                    "batches": len(scorer.plan([len(x) for x in scorer.tokenize(texts)])),
                    "seconds": round(seconds, 3),
                    "cpu_seconds": round(cpu_s, 3),
                    "texts_per_s": round(n / seconds, 2),
                    "speedup_vs_anchor": round(speedup, 2),
                    "cpu_time_ratio_vs_anchor": round(anchor_cpu / cpu_s, 2),
                    "speedup_vs_pipeline_bs32": round(n / seconds / bs32_tps, 2),
                    "argmax_agreement": agreement,
                    "max_abs_prob_diff": float(np.abs(probs - anchor_probs).max()),
                }
            )
            if agreement >= 0.99 and (best is None or speedup > best[1]):
                best = (variant, speedup, agreement)
            del scorer

        emit(
            {
                "summary": True,
                "target": "speedup_vs_anchor >= 4 with argmax_agreement >= 0.99",
                "best_variant": best[0] if best else None,
                "speedup_vs_anchor": round(best[1], 2) if best else None,
                "argmax_agreement": best[2] if best else None,
                "met": bool(best and best[1] >= 4.0),
                "load_avg_1m_end": os.getloadavg()[0],
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
