"""Parquet tables hive-partitioned by ``timeframe=`` and ``symbol=`` (column names are contract).

Partition files are written with fixed options and no pandas index so that the same data
always gives the same bytes (content hashes then agree between a laptop and a cluster run).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PART_FILE = "part-0.parquet"


def partition_dir(root: Path, timeframe: str, symbol: str) -> Path:
    if "/" in symbol or symbol.startswith("."):
        raise ValueError(f"Invalid symbol {symbol!r}: symbols become directory names")
    return root / f"timeframe={timeframe}" / f"symbol={symbol}"


def write_frame(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    # pandas metadata embeds library versions; strip it so bytes depend on the data alone.
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd", write_statistics=True)
    return path


def write_partition(root: Path, timeframe: str, symbol: str, df: pd.DataFrame) -> Path:
    return write_frame(partition_dir(root, timeframe, symbol) / PART_FILE, df)


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        df = pq.read_table(path, columns=columns).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise ValueError(
            f"{path}: cannot read Parquet ({e}). The file is corrupt or truncated; "
            f"rebuild the artifact that contains it (run its stage with run.force=true)."
        ) from e
    if "timestamp" in df.columns and df["timestamp"].dt.tz is None:
        df["timestamp"] = df["timestamp"].dt.tz_localize("UTC")
    return df


def read_partition(root: Path, timeframe: str, symbol: str) -> pd.DataFrame:
    path = partition_dir(root, timeframe, symbol) / PART_FILE
    if not path.is_file():
        raise ValueError(
            f"No partition timeframe={timeframe} symbol={symbol} under {root}; "
            f"available: {sorted(list_partitions(root))}"
        )
    return read_frame(path)


def list_partitions(root: Path) -> list[tuple[str, str]]:
    """(timeframe, symbol) pairs present under ``root``, sorted."""
    out = []
    for p in root.glob("timeframe=*/symbol=*"):
        if p.is_dir() and (p / PART_FILE).is_file():
            out.append((p.parent.name.split("=", 1)[1], p.name.split("=", 1)[1]))
    return sorted(out)
