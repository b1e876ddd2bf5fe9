"""Atomic writes: readers must never see half a file or half a directory.

Everything is written under a temporary name in the destination's own directory (same
filesystem, so ``os.rename`` is atomic) and renamed into place only once complete. A crash
leaves at most a ``.tmp-*`` entry that no reader looks at and the next writer cleans up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; some filesystems (e.g. NFS clients) refuse O_RDONLY on dirs.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` when the block succeeds.

    On an exception the temporary directory is removed and ``final`` is left as it was.
    With ``overwrite`` an existing ``final`` is swapped out (rename aside, rename in, delete
    the old one), so there is no moment at which a reader sees a partial directory.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, final, overwrite=overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, final: Path, *, overwrite: bool) -> None:
    """Rename ``tmp`` to ``final``; with several writers racing, the last one wins cleanly."""
    for _ in range(20):
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} already exists; pass overwrite=True to replace it")
            old = final.parent / f"{TMP_PREFIX}old-{final.name}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, old)
            except FileNotFoundError:  # another writer moved it away first: try again
                continue
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another writer put its version in between: swap again
            continue
        _fsync_dir(final.parent)
        return
    raise RuntimeError(f"could not move {tmp} into place at {final}: too many concurrent writers")


def clean_stale_tmp(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove leftovers of crashed writers in ``directory``; returns what was removed."""
    removed = []
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed
