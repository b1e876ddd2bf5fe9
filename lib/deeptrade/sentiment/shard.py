"""Sharded, resumable scoring: each array task / MPI rank scores its own slice of the news.

An item belongs to shard ``stable_hash(id) % count`` (blake2b of the UTF-8 id: the same on every
machine, Python version and run, unlike ``hash()``). A shard writes its scores in parts of
``part_size`` items, each one Parquet file written atomically::

    out_dir/shard-00003-part-00012.parquet   # complete or absent, never half-written
    out_dir/shard-00003-done.json            # the shard finished (counts, model hash)

A killed task loses at most the part in flight: on restart the ids already in its parts are
skipped, so every item is scored exactly once. Each part records the model hash and shard count
in its Parquet metadata; resuming with a different model or shard count is refused rather than
mixed. ``merge_parts`` returns exactly what an unsharded run returns (sorted by id, symbol).
Every shard writes only its own files, so shards never contend; ``out_dir`` should belong to one
(input, model) combination, as the artifact store's hashed directories do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deeptrade.io.atomic import TMP_PREFIX, atomic_write_bytes, atomic_write_text
from deeptrade.sentiment.scorer import sort_scores

PART_RE = re.compile(r"^shard-(\d{5})-part-(\d{5})\.parquet$")
META_KEY = b"deeptrade.sentiment"
# Environment variables that only an MPI launcher sets; without one, mpi4py is never imported
# (importing it initialises MPI, which plain Slurm or laptop runs do not want).
_MPI_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


@dataclass(kw_only=True)
class ShardSpec:
    """This process's slice: shard ``index`` of ``count``."""

    index: int = 0
    """0-based shard number."""
    count: int = 1
    """Number of shards (array tasks x ranks)."""

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in 0..{self.count - 1}, got {self.index}")


def shard_of(ids: Sequence[str] | pd.Series, count: int) -> np.ndarray:
    """Shard number of each id: blake2b-64 of the UTF-8 id, modulo ``count``."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little")
            % count
            for i in ids
        ),
        dtype=np.int64,
        count=len(ids),
    )


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise ValueError(f"{name} is not set but the other Slurm array variables are")
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None


def _array_shard(env: Mapping[str, str]) -> ShardSpec:
    if "SLURM_ARRAY_TASK_ID" not in env:
        return ShardSpec()
    task, count = _int(env, "SLURM_ARRAY_TASK_ID"), _int(env, "SLURM_ARRAY_TASK_COUNT")
    first, step = _int(env, "SLURM_ARRAY_TASK_MIN", 0), _int(env, "SLURM_ARRAY_TASK_STEP", 1)
    index, rest = divmod(task - first, step)
    if rest or not 0 <= index < count:
        raise ValueError(
            f"Slurm array task {task} does not fit min={first}, step={step}, count={count}; "
            "use a plain --array=0-N range or pass the shard index/count explicitly"
        )
    return ShardSpec(index=index, count=count)


def _rank_shard(env: Mapping[str, str]) -> ShardSpec:
    if any(k in env for k in _MPI_ENV) and importlib.util.find_spec("mpi4py") is not None:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        return ShardSpec(index=comm.Get_rank(), count=comm.Get_size())
    ntasks = _int(env, "SLURM_NTASKS", 1)
    if ntasks > 1:  # srun -n N: one shard per task
        return ShardSpec(index=_int(env, "SLURM_PROCID", 0), count=ntasks)
    return ShardSpec()


def shard_from_env(env: Mapping[str, str] | None = None) -> ShardSpec:
    """Shard of this process: Slurm array task x (MPI rank or srun task); (0, 1) otherwise.

    Array tasks are the outer level and ranks the inner one, so ``--array=0-3`` with
    ``srun -n 2`` gives 8 shards. Arrays with a step (``--array=0-10:2``) are understood.
    """
    env = os.environ if env is None else env
    outer, inner = _array_shard(env), _rank_shard(env)
    return ShardSpec(index=outer.index * inner.count + inner.index, count=outer.count * inner.count)


class Scorer(Protocol):
    model_hash: str

    def score(self, items: pd.DataFrame) -> pd.DataFrame: ...


@dataclass(kw_only=True)
class ShardReport:
    """What one ``score_shard`` call found and did."""

    shard: ShardSpec
    items: int
    """Items that belong to this shard."""
    already_scored: int
    """Of those, items found in earlier parts (a resume)."""
    scored: int
    """Items scored by this call."""
    parts: list[Path] = field(default_factory=list)
    """Part files written by this call."""


def part_path(out_dir: Path, shard: int, part: int) -> Path:
    return out_dir / f"shard-{shard:05d}-part-{part:05d}.parquet"


def done_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"shard-{shard:05d}-done.json"


def list_parts(out_dir: str | Path, shard: int | None = None) -> list[tuple[int, int, Path]]:
    """(shard, part, path) of complete part files, sorted; temporary files are ignored."""
    out = []
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            m = PART_RE.match(p.name)
            if m and (shard is None or int(m.group(1)) == shard):
                out.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(out)


def _meta(path: Path) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    if META_KEY not in meta:
        raise ValueError(f"{path}: not a sentiment part (no {META_KEY.decode()} metadata)")
    return json.loads(meta[META_KEY])


def _part_bytes(scores: pd.DataFrame, meta: dict[str, Any]) -> bytes:
    table = pa.Table.from_pandas(scores, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def score_shard(
    items: pd.DataFrame,
    scorer: Scorer,
    out_dir: str | Path,
    shard: ShardSpec,
    *,
    part_size: int = 20_000,
    after_part: Callable[[Path], None] | None = None,
) -> ShardReport:
    """Score this shard's items not yet in its parts, ``part_size`` items per new part.

    ``after_part`` is called with each new part's path once it is in place (progress, or a
    test that kills the run midway).
    """
    if part_size < 1:
        raise ValueError(f"part_size must be >= 1, got {part_size}")
    dup = items["id"].duplicated()
    if dup.any():
        raise ValueError(
            f"news ids must be unique (e.g. {items.loc[dup, 'id'].iloc[0]!r} repeats); "
            "pass the items through news.dedupe_news first"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in out_dir.glob(f"{TMP_PREFIX}shard-{shard.index:05d}-*"):
        p.unlink(missing_ok=True)  # our own leftovers from a killed write; others' are not ours
    meta = {"shard_index": shard.index, "shard_count": shard.count, "model_hash": scorer.model_hash}

    done_ids: set[str] = set()
    existing = list_parts(out_dir, shard.index)
    for _, _, path in existing:
        found = _meta(path)
        if found != meta:
            raise ValueError(
                f"{path} was written with {found}, this run has {meta}: a different model or "
                "shard count. Use a fresh output directory (or delete this one) to start over."
            )
        done_ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())

    mine = items[shard_of(items["id"], shard.count) == shard.index]
    todo = mine[~mine["id"].isin(done_ids)].sort_values("id", kind="stable")
    next_part = existing[-1][1] + 1 if existing else 0
    report = ShardReport(
        shard=shard, items=len(mine), already_scored=len(mine) - len(todo), scored=0
    )
    for start in range(0, len(todo), part_size):
        chunk = todo.iloc[start : start + part_size]
        path = part_path(out_dir, shard.index, next_part)
        atomic_write_bytes(path, _part_bytes(sort_scores(scorer.score(chunk)), meta))
        next_part += 1
        report.scored += len(chunk)
        report.parts.append(path)
        if after_part is not None:
            after_part(path)
    atomic_write_text(
        done_path(out_dir, shard.index),
        json.dumps({**meta, "items": report.items, "parts": next_part}, indent=1),
    )
    return report


def merge_parts(out_dir: str | Path, *, shard_count: int) -> pd.DataFrame:
    """All shards' scores as one table, sorted by (id, symbol): equal to an unsharded run.

    Refuses to merge while a shard has not finished (no done marker), when parts disagree on the
    model, or when an item was scored twice.
    """
    out_dir = Path(out_dir)
    missing = [i for i in range(shard_count) if not done_path(out_dir, i).is_file()]
    if missing:
        raise ValueError(
            f"{out_dir}: shard(s) {missing} of {shard_count} have not finished; rerun those "
            "array tasks (they resume where they stopped)"
        )
    parts = list_parts(out_dir)
    hashes = {_meta(p)["model_hash"] for _, _, p in parts}
    if len(hashes) > 1:
        raise ValueError(f"{out_dir}: parts come from different models {sorted(hashes)}")
    if not parts:
        raise ValueError(f"{out_dir}: no scored parts")
    scores = pd.concat([pd.read_parquet(p) for _, _, p in parts], ignore_index=True)
    dup = scores.duplicated(["id", "symbol"], keep=False)
    if dup.any():
        raise ValueError(
            f"{out_dir}: {int(dup.sum())} rows scored more than once (e.g. id "
            f"{scores.loc[dup, 'id'].iloc[0]!r}); the directory mixes runs, start it afresh"
        )
    return sort_scores(scores)
