"""Shared fixtures. Every test gets its own artifact store; nothing touches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh artifact store root, exported as DEEPTRADE_ROOT for jobs and subprocesses."""
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("DEEPTRADE_ROOT", str(root))
    return root
