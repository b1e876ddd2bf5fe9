"""The ingest stage: source -> validated, resampled bars in the store (plus quarantine).

Kept out of ``jobs/ingest.py`` so the Hydra entrypoint stays a thin compose-build-run file and
this logic is testable without Hydra.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from deeptrade.config.compose import to_container
from deeptrade.config.jobs import DataConfig
from deeptrade.io.artifacts import ArtifactStore
from deeptrade.io.tables import write_partition

log = logging.getLogger(__name__)
STAGE_VERSION = "1"


def _file_digest(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"data.files: {path} does not exist (paths are relative to {Path.cwd()})")
    return hashlib.sha256(p.read_bytes()).hexdigest()


def source_fingerprint(data: DataConfig) -> dict[str, str]:
    """What identifies the raw input: file digests, or the versions of the data packages."""
    if data.source == "files":
        return {f"file:{Path(f).name}": _file_digest(f) for f in data.files}
    if data.source == "sample":
        pkgs = {"daily": ["arch", "bokeh_sampledata"], "intraday": ["mlfinpy"]}[data.dataset]
        return {f"pkg:{p}": md.version(p) for p in pkgs}
    if data.source == "alpaca":
        # Remote data can change; an open end date means "until today", so key on today.
        end = data.end or pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
        return {"alpaca": f"{data.start}..{end}"}
    raise ValueError(f"data.source={data.source!r} is not known; use sample, files or alpaca")


def stage_key(store: ArtifactStore, data: DataConfig) -> str:
    return store.stage_key(to_container(data), source_fingerprint(data), STAGE_VERSION)


def read_file(path: str, *, tz: str | None) -> dict[str, pd.DataFrame]:
    """A file with a ``symbol`` column holds several series; otherwise its stem names it."""
    from deeptrade.data.sources import read_bars_file

    try:
        frames = read_bars_file(path, tz=tz)
    except ValueError as e:
        if "has no 'symbol' column" not in str(e):
            raise
        frames = read_bars_file(path, symbol=Path(path).name.split(".")[0].upper(), tz=tz)
    for df in frames.values():
        df.attrs["source"] = str(path)  # errors name the file the rows came from
    return frames


def load_alpaca(data: DataConfig) -> dict[str, pd.DataFrame]:
    """Bars from Alpaca's historical API; keys from a 0600 file or the env, never the config."""
    from deeptrade.data.sources import AlpacaBarsSource
    from deeptrade.live.broker import AlpacaKeys

    if not data.symbols or not data.start:
        raise ValueError("data.source=alpaca needs data.symbols=[...] and data.start=YYYY-MM-DD")
    keys = AlpacaKeys.from_file(data.keys_file) if data.keys_file else AlpacaKeys.from_env()
    src = AlpacaBarsSource(api_key=keys.key_id, secret_key=keys.secret_key, config=data.alpaca)
    end = data.end or pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    return src.fetch(list(data.symbols), timeframe=data.source_timeframe, start=data.start, end=end)


def up_to_date(data: DataConfig, store: ArtifactStore) -> bool:
    return store.up_to_date("bars", data.name, stage_key(store, data)) is not None


def load_raw(data: DataConfig) -> dict[str, pd.DataFrame]:
    """Raw frames per symbol from the configured source (not yet validated)."""
    from deeptrade.data import sources

    if data.source == "sample":
        frames = sources.load_sample(data.dataset)
    elif data.source == "files":
        frames = {}
        for f in data.files:
            frames.update(read_file(f, tz=data.tz))
    elif data.source == "alpaca":
        frames = load_alpaca(data)
    else:
        raise ValueError(f"data.source={data.source!r} is not known; use sample, files or alpaca")
    if data.symbols:
        missing = sorted(set(data.symbols) - set(frames))
        if missing:
            raise ValueError(
                f"data.symbols asks for {missing}, which source '{data.source}' does not have; "
                f"available: {sorted(frames)}"
            )
        frames = {s: frames[s] for s in data.symbols}
    start = pd.Timestamp(data.start, tz="UTC") if data.start else None
    end = pd.Timestamp(data.end, tz="UTC") + pd.Timedelta(days=1) if data.end else None
    out = {}
    for sym, df in frames.items():
        ts = df["timestamp"]
        mask = pd.Series(True, index=df.index)
        if start is not None and getattr(ts.dt, "tz", None) is not None:
            mask &= ts >= start
        if end is not None and getattr(ts.dt, "tz", None) is not None:
            mask &= ts < end
        out[sym] = df[mask]
        out[sym].attrs.update(df.attrs)
    return out


def run_ingest(data: DataConfig, store: ArtifactStore, *, force: bool = False) -> dict[str, Any]:
    from deeptrade.data.resample import resample_bars
    from deeptrade.data.validate import validate_bars

    key = stage_key(store, data)
    if not force and (art := store.up_to_date("bars", data.name, key)):
        log.info("bars/%s is up to date (manifest key matches); skipping", data.name)
        return {"artifact": art.ref, "skipped": True}
    raw = load_raw(data)
    results = {
        sym: validate_bars(
            df,
            symbol=sym,
            timeframe=data.source_timeframe,
            source=df.attrs.get("source", f"{data.source}:{data.dataset}"),
            config=data.validation,
        )
        for sym, df in raw.items()
    }
    quarantined = {s: r.quarantined for s, r in results.items() if len(r.quarantined)}
    if quarantined:
        # Quarantined rows are kept, with the rule and reason, in their own artifact.
        with store.write("quarantine", data.name, key=key, config=to_container(data)) as tmp:
            for sym, q in quarantined.items():
                write_partition(tmp, data.source_timeframe, sym, q)
    meta: dict[str, Any] = {
        "symbols": sorted(results),
        "timeframes": list(data.timeframes),
        "rows": {},
        "quarantined": {s: len(q) for s, q in quarantined.items()},
    }
    with store.write("bars", data.name, key=key, config=to_container(data), meta=meta) as tmp:
        for sym, res in results.items():
            (tmp / "_reports").mkdir(exist_ok=True)
            (tmp / "_reports" / f"{sym}.json").write_text(
                json.dumps(res.report, indent=1, default=str)
            )
            for tf in data.timeframes:
                df = (
                    res.clean
                    if tf == data.source_timeframe
                    else resample_bars(
                        res.clean,
                        tf,
                        calendar=data.validation.calendar,
                        source_timeframe=data.source_timeframe,
                    )
                )
                write_partition(tmp, tf, sym, df)
                meta["rows"][f"{tf}/{sym}"] = len(df)
    art = store.require("bars", data.name)
    log.info("wrote %s: %d symbols x %d timeframes", art.ref, len(results), len(data.timeframes))
    return {"artifact": art.ref, "skipped": False, "rows": meta["rows"]}
