import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deeptrade.io import MANIFEST, ArtifactStore, atomic_dir
from deeptrade.io.artifacts import hash_dir, redact


def _write(store: ArtifactStore, name: str = "x", key: str = "k1", payload: str = "a") -> None:
    with store.write("bars", name, key=key, config={"a": 1}) as tmp:
        (tmp / "data.txt").write_text(payload)


def test_write_commits_manifest_last_and_records_lineage(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with store.write(
        "features",
        "f",
        key="k",
        config={"x": 1, "api_key": "SECRET"},
        inputs={"bars/x": "abc"},
        meta={"horizon": 5},
    ) as tmp:
        (tmp / "a.parquet").write_bytes(b"123")
        assert store.get("features", "f") is None  # not visible while being written
    art = store.require("features", "f")
    m = art.manifest
    assert m.kind == "features" and m.inputs == {"bars/x": "abc"} and m.meta == {"horizon": 5}
    assert m.content_hash == hash_dir(art.path)
    assert m.config["api_key"] == "<redacted>"
    assert "SECRET" not in (art.path / MANIFEST).read_text()
    for field in (
        "git_commit",
        "host",
        "created_at",
        "schema_version",
        "slurm_job_id",
        "image_digest",
    ):
        assert field in json.loads((art.path / MANIFEST).read_text())
    art.verify()


def test_failed_write_leaves_nothing_and_keeps_old_version(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    _write(store, payload="old")
    with pytest.raises(RuntimeError), store.write("bars", "x", key="k2", config={}) as tmp:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("crash")
    art = store.require("bars", "x")
    assert (art.path / "data.txt").read_text() == "old" and art.manifest.key == "k1"
    assert [p.name for p in (tmp_path / "bars").iterdir()] == ["x"]


def test_up_to_date_and_overwrite(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    _write(store, key="k1")
    assert store.up_to_date("bars", "x", "k1") is not None
    assert store.up_to_date("bars", "x", "k2") is None
    _write(store, key="k2", payload="new")
    assert store.up_to_date("bars", "x", "k2") is not None
    assert (store.path("bars", "x") / "data.txt").read_text() == "new"


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    _write(store)
    art = store.require("bars", "x")
    (art.path / "data.txt").write_text("edited")
    with pytest.raises(ValueError, match="modified after it was written"):
        art.verify()


def test_directory_without_manifest_is_ignored(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    (tmp_path / "bars" / "half").mkdir(parents=True)
    (tmp_path / "bars" / "half" / "data.txt").write_text("x")
    assert store.get("bars", "half") is None
    assert store.list("bars") == []
    with pytest.raises(ValueError, match="Missing input artifact bars/half"):
        store.require("bars", "half")


def test_bad_names_rejected(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    for bad in ("../etc", ".hidden", "a//b"):
        with pytest.raises(ValueError, match="Invalid artifact name"):
            store.path("bars", bad)


def test_redact_nested() -> None:
    cfg = {"alpaca": {"secret_key": "s", "key_id": "k", "url": "u"}, "token": None}
    assert redact(cfg) == {
        "alpaca": {"secret_key": "<redacted>", "key_id": "<redacted>", "url": "u"},
        "token": None,
    }


def test_write_killed_midway_leaves_no_readable_artifact(tmp_path: Path) -> None:
    """SIGKILL a writer after it wrote part of an artifact: readers see nothing, retry works."""
    script = textwrap.dedent(f"""
        import time
        from deeptrade.io import ArtifactStore
        store = ArtifactStore({str(tmp_path)!r})
        with store.write("bars", "big", key="k", config={{}}) as tmp:
            (tmp / "part-0.parquet").write_bytes(b"x" * 1000)
            print("written-first", flush=True)
            time.sleep(60)
            (tmp / "part-1.parquet").write_bytes(b"y")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written-first"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    store = ArtifactStore(tmp_path)
    assert store.get("bars", "big") is None
    assert store.list("bars") == []
    leftovers = [p.name for p in (tmp_path / "bars").iterdir()]
    assert leftovers and all(n.startswith(".tmp-") for n in leftovers)
    _write(store, name="big")
    assert store.require("bars", "big").manifest.key == "k1"


def test_atomic_dir_no_overwrite(tmp_path: Path) -> None:
    with atomic_dir(tmp_path / "d") as t:
        (t / "f").write_text("1")
    with pytest.raises(FileExistsError), atomic_dir(tmp_path / "d", overwrite=False) as t:
        (t / "f").write_text("2")
    assert (tmp_path / "d" / "f").read_text() == "1"
    assert time.time() > 0
