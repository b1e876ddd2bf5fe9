"""Checkpoint directories: ``step-N/``, complete only once ``meta.json`` landed inside.

Each checkpoint is written through ``atomic_dir`` (temporary name, renamed into place), and
``meta.json`` is its last file, so a reader that finds ``step-N/meta.json`` knows everything
else in ``step-N/`` is complete. Resume takes the highest complete ``N``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from deeptrade.io.atomic import atomic_write_text, clean_stale_tmp

META = "meta.json"
_STEP = re.compile(r"^step-(\d+)$")


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step}"


def _steps(root: Path) -> list[tuple[int, Path]]:
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def complete_steps(root: Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every complete checkpoint, oldest first."""
    return [(n, p) for n, p in _steps(root) if (p / META).is_file()]


def latest_complete(root: Path) -> Path | None:
    steps = complete_steps(root)
    return steps[-1][1] if steps else None


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json``; call it last, after every other file of the checkpoint."""
    atomic_write_text(Path(directory) / META, json.dumps({**meta, "written_at": time.time()}))


def read_meta(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / META).read_text())


def prune(root: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` complete checkpoints; drop older ones, incomplete ones and
    leftovers of crashed writers. Returns what was removed."""
    complete = complete_steps(root)
    keep_paths = {p for _, p in complete[-keep:]} if keep > 0 else set()
    removed = []
    for _, p in _steps(root):
        if p not in keep_paths:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    removed += clean_stale_tmp(root)
    return removed
