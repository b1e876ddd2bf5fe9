"""The artifact store: versioned directories that jobs hand each other.

An artifact is ``<root>/<kind>/<name>/``. It is written under a temporary name and renamed
into place (``deeptrade.io.atomic``); it counts only once ``_MANIFEST.json`` exists, which is
written last. A stage whose key (hash of its config and its inputs' content hashes) equals the
key in an existing manifest is skipped — that is what lets a 1,000-task sweep be resubmitted
and redo only what failed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deeptrade.io.atomic import atomic_dir, atomic_write_text

MANIFEST = "_MANIFEST.json"
SCHEMA_VERSION = 1
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_key|key_id|credential)", re.I)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_obj(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def hash_dir(path: Path, *, exclude: tuple[str, ...] = (MANIFEST,)) -> str:
    """sha256 over relative paths and bytes of every file, in sorted order."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name not in exclude:
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


def redact(obj: Any) -> Any:
    """Drop values whose key looks like a secret: manifests must never carry credentials."""
    if isinstance(obj, Mapping):
        return {
            k: ("<redacted>" if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj


def git_commit() -> str | None:
    if commit := os.environ.get("DEEPTRADE_GIT_COMMIT"):
        return commit
    repo = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def slurm_job_id() -> str | None:
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


@dataclass(kw_only=True)
class Manifest:
    kind: str
    name: str
    key: str
    """Hash of the stage's config and its inputs' content hashes (skip test)."""
    content_hash: str
    inputs: dict[str, str] = field(default_factory=dict)
    """Input artifact path (kind/name) -> its content hash: the lineage."""
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    """Stage-specific facts readers need (e.g. label horizon, symbols, row counts)."""
    git_commit: str | None = None
    image_digest: str | None = None
    slurm_job_id: str | None = None
    host: str = ""
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads((path / MANIFEST).read_text())
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: manifest schema version {data.get('schema_version')} is not "
                f"{SCHEMA_VERSION}; rebuild it with this version (run the stage with run.force=true)"
            )
        return cls(**data)


@dataclass(kw_only=True)
class Artifact:
    path: Path
    manifest: Manifest

    @property
    def ref(self) -> str:
        return f"{self.manifest.kind}/{self.manifest.name}"

    def verify(self) -> None:
        """Recompute the content hash: refuses an artifact edited after it was written."""
        actual = hash_dir(self.path)
        if actual != self.manifest.content_hash:
            raise ValueError(
                f"{self.path}: content hash {actual[:12]} does not match its manifest "
                f"({self.manifest.content_hash[:12]}); it was modified after it was written. "
                f"Rebuild it (run.force=true) or restore the original files."
            )


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, kind: str, name: str) -> Path:
        for part in (kind, *name.split("/")):
            if not part or part.startswith(".") or part in ("..",) or "\\" in part:
                raise ValueError(f"Invalid artifact name '{kind}/{name}': use plain path segments")
        return self.root / kind / name

    def get(self, kind: str, name: str) -> Artifact | None:
        """The artifact if it is complete (has a manifest); None otherwise."""
        path = self.path(kind, name)
        if not (path / MANIFEST).is_file():
            return None
        return Artifact(path=path, manifest=Manifest.read(path))

    def require(self, kind: str, name: str, *, hint: str = "") -> Artifact:
        art = self.get(kind, name)
        if art is None:
            raise ValueError(
                f"Missing input artifact {kind}/{name} under {self.root}. "
                + (hint or "Run the stage that produces it first.")
            )
        return art

    def list(self, kind: str) -> list[Artifact]:
        base = self.root / kind
        if not base.is_dir():
            return []
        found = []
        for mf in sorted(base.rglob(MANIFEST)):
            if any(part.startswith(".") for part in mf.relative_to(base).parts):
                continue
            found.append(Artifact(path=mf.parent, manifest=Manifest.read(mf.parent)))
        return found

    @staticmethod
    def stage_key(config: Any, inputs: Mapping[str, str], version: str = "1") -> str:
        return hash_obj({"config": config, "inputs": dict(sorted(inputs.items())), "v": version})

    def up_to_date(self, kind: str, name: str, key: str) -> Artifact | None:
        art = self.get(kind, name)
        return art if art is not None and art.manifest.key == key else None

    @contextlib.contextmanager
    def write(
        self,
        kind: str,
        name: str,
        *,
        key: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Iterator[Path]:
        """Yield a temp dir; on success write the manifest last and rename into place.

        ``meta`` may be updated inside the block (it is read when the block ends).
        """
        final = self.path(kind, name)
        meta = {} if meta is None else meta
        with atomic_dir(final) as tmp:
            yield tmp
            manifest = Manifest(
                kind=kind,
                name=name,
                key=key,
                content_hash=hash_dir(tmp),
                inputs=dict(inputs or {}),
                config=redact(dict(config)),
                meta=meta,
                git_commit=git_commit(),
                image_digest=os.environ.get("DEEPTRADE_IMAGE_DIGEST"),
                slurm_job_id=slurm_job_id(),
                host=socket.gethostname(),
                created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )
            atomic_write_text(tmp / MANIFEST, json.dumps(asdict(manifest), indent=2, default=str))
