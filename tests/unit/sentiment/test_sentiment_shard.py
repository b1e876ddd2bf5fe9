"""Sharding and resume: 3 shards == unsharded, a killed run resumes scoring each item once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from deeptrade.sentiment.scorer import SentimentScorer, sort_scores
from deeptrade.sentiment.shard import (
    ShardSpec,
    done_path,
    list_parts,
    merge_parts,
    score_shard,
    shard_from_env,
    shard_of,
)


class _Killed(Exception):
    pass


class _Counting:
    """The real scorer, counting what it is asked to score (to prove nothing is scored twice)."""

    def __init__(self, scorer: SentimentScorer) -> None:
        self.scorer = scorer
        self.model_hash = scorer.model_hash
        self.seen: Counter[str] = Counter()

    def score(self, items: pd.DataFrame) -> pd.DataFrame:
        self.seen.update(items["id"])
        return self.scorer.score(items)


def test_shard_of_is_stable_and_balanced() -> None:
    # Golden values: a change here reshuffles every resumable run in the field.
    assert shard_of(["h001", "h002", "abc", "1000"], 7).tolist() == [2, 3, 3, 6]
    ids = [f"id{i}" for i in range(3000)]
    counts = Counter(shard_of(ids, 3).tolist())
    assert set(counts) == {0, 1, 2} and min(counts.values()) > 900


def test_shard_from_env() -> None:
    assert shard_from_env({}) == ShardSpec(index=0, count=1)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "3"}
    assert shard_from_env(env) == ShardSpec(index=2, count=4)
    stepped = {**env, "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_STEP": "2"}
    assert shard_from_env(stepped) == ShardSpec(index=2, count=4)
    # array tasks outside, srun tasks inside: task 2 of 4, proc 1 of 2 -> shard 5 of 8
    both = {**env, "SLURM_NTASKS": "2", "SLURM_PROCID": "1"}
    assert shard_from_env(both) == ShardSpec(index=5, count=8)
    with pytest.raises(ValueError, match="does not fit"):
        shard_from_env({**env, "SLURM_ARRAY_TASK_ID": "9"})
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_COUNT is not set"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "0"})
    with pytest.raises(ValueError, match="shard index"):
        ShardSpec(index=3, count=3)


def test_three_shards_merge_to_the_unsharded_output(tmp_path, scorer, news_items) -> None:
    unsharded = sort_scores(scorer.score(news_items))
    sizes = []
    for i in range(3):
        report = score_shard(news_items, scorer, tmp_path, ShardSpec(index=i, count=3), part_size=5)
        sizes.append(report.items)
        assert report.scored == report.items and report.already_scored == 0
    assert sum(sizes) == len(news_items) and min(sizes) > 0
    merged = merge_parts(tmp_path, shard_count=3)
    pd.testing.assert_frame_equal(merged, unsharded, check_exact=True)


def test_killed_run_resumes_and_scores_each_item_once(tmp_path, scorer, news_items) -> None:
    counting = _Counting(scorer)
    shard = ShardSpec(index=0, count=1)

    def kill_after_three(path: Path) -> None:
        if len(list_parts(tmp_path)) == 3:
            raise _Killed(path.name)

    with pytest.raises(_Killed):
        score_shard(news_items, counting, tmp_path, shard, part_size=6, after_part=kill_after_three)
    assert len(list_parts(tmp_path)) == 3 and not done_path(tmp_path, 0).exists()
    with pytest.raises(ValueError, match=r"shard\(s\) \[0\] of 1 have not finished"):
        merge_parts(tmp_path, shard_count=1)
    # A write interrupted mid-file leaves only a temporary name, which resume ignores and removes.
    (tmp_path / ".tmp-shard-00000-part-00003.parquet-dead").write_bytes(b"PAR1 half")

    report = score_shard(news_items, counting, tmp_path, shard, part_size=6)
    assert report.already_scored == 18 and report.scored == 22
    assert report.parts[0].name == "shard-00000-part-00003.parquet"
    assert not list(tmp_path.glob(".tmp-*"))
    assert set(counting.seen.values()) == {1} and len(counting.seen) == 40

    ids_in_parts = Counter()
    for _, _, p in list_parts(tmp_path):
        ids_in_parts.update(set(pq.read_table(p, columns=["id"]).column("id").to_pylist()))
    assert len(ids_in_parts) == 40 and set(ids_in_parts.values()) == {1}

    merged = merge_parts(tmp_path, shard_count=1)
    pd.testing.assert_frame_equal(merged, sort_scores(scorer.score(news_items)), check_exact=True)
    again = score_shard(news_items, counting, tmp_path, shard, part_size=6)
    assert again.scored == 0 and again.already_scored == 40
    assert json.loads(done_path(tmp_path, 0).read_text())["items"] == 40


def test_resume_refuses_another_model_or_shard_count(tmp_path, scorer, news_items) -> None:
    score_shard(news_items, scorer, tmp_path, ShardSpec(index=0, count=2), part_size=50)

    class Other(_Counting):
        pass

    other = Other(scorer)
    other.model_hash = "0" * 64
    with pytest.raises(ValueError, match=r"different model or shard count.*fresh output"):
        score_shard(news_items, other, tmp_path, ShardSpec(index=0, count=2))
    with pytest.raises(ValueError, match="different model or shard count"):
        score_shard(news_items, scorer, tmp_path, ShardSpec(index=0, count=3))


def test_merge_refuses_duplicates(tmp_path, scorer, news_items) -> None:
    score_shard(news_items, scorer, tmp_path, ShardSpec(), part_size=50)
    part = list_parts(tmp_path)[0][2]
    copy = tmp_path / "shard-00000-part-00001.parquet"
    copy.write_bytes(part.read_bytes())
    with pytest.raises(ValueError, match="scored more than once"):
        merge_parts(tmp_path, shard_count=1)


def test_duplicate_ids_are_refused(tmp_path, scorer, news_items) -> None:
    doubled = pd.concat([news_items, news_items.head(1)], ignore_index=True)
    with pytest.raises(ValueError, match=r"ids must be unique.*dedupe_news"):
        score_shard(doubled, scorer, tmp_path, ShardSpec())
