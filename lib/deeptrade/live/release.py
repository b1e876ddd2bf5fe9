"""Refuse to trade a release that is not exactly what was published and validated."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from deeptrade.io.artifacts import MANIFEST, SCHEMA_VERSION, Manifest, hash_dir

RELEASE_KIND = "releases"  # the store directory releases/<name>/ (DESIGN.md)
FEATURE_SPEC_HASH_KEY = "feature_spec_hash"
"""``manifest.meta[FEATURE_SPEC_HASH_KEY]``: hash of the feature definition the model was
trained on; the live feature calculator must compute the same one."""


def check_release(
    release_dir: str | Path,
    *,
    expected_feature_spec_hash: str,
    max_age: dt.timedelta,
    now: dt.datetime | None = None,
) -> Manifest:
    """The release's manifest, if the release is complete, untouched, compatible and fresh.

    Raises ``ValueError`` saying what is wrong and what to do when the manifest is missing, its
    schema version differs, it is not a release, its files do not hash to the recorded content
    hash, its feature spec hash differs from ``expected_feature_spec_hash``, or it is older
    than ``max_age``.
    """
    path = Path(release_dir)
    mf = path / MANIFEST
    if not mf.is_file():
        raise ValueError(
            f"{path} is not a complete release: {MANIFEST} is missing. Publish it with "
            "`deeptrade publish` (a release counts only once its manifest exists)."
        )
    try:
        raw = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{mf}: unreadable manifest ({exc}); republish the release") from None
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: release manifest schema version {raw.get('schema_version')} differs from "
            f"this code's {SCHEMA_VERSION}; republish the release with this version of deeptrade"
        )
    manifest = Manifest.read(path)
    if manifest.kind != RELEASE_KIND:
        raise ValueError(f"{path} is a {manifest.kind!r} artifact, not a {RELEASE_KIND!r}")
    actual = hash_dir(path)
    if actual != manifest.content_hash:
        raise ValueError(
            f"{path}: release content hash {actual[:12]} does not match its manifest "
            f"({manifest.content_hash[:12]}): files were changed after publishing. Refusing "
            "to trade it; republish the release from its backtest."
        )
    spec_hash = manifest.meta.get(FEATURE_SPEC_HASH_KEY)
    if not spec_hash:
        raise ValueError(
            f"{path}: manifest meta has no {FEATURE_SPEC_HASH_KEY}; republish the release "
            "so the live job can check it computes the features the model was trained on"
        )
    if spec_hash != expected_feature_spec_hash:
        raise ValueError(
            f"{path}: release was trained on feature spec {str(spec_hash)[:12]} but this job "
            f"computes feature spec {expected_feature_spec_hash[:12]}. Deploy the code the "
            "release was built with, or retrain and republish."
        )
    created = dt.datetime.fromisoformat(manifest.created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    age = now - created
    if age > max_age:
        raise ValueError(
            f"{path}: release is {_fmt(age)} old (created {manifest.created_at}), older than the "
            f"allowed {_fmt(max_age)}. Retrain and republish, or raise the maximum age knowingly."
        )
    return manifest


def release_id(manifest: Manifest) -> str:
    """Short stable name for client_order_ids and logs: ``<name>@<content hash prefix>``."""
    return f"{manifest.name}@{manifest.content_hash[:12]}"


def _fmt(td: dt.timedelta) -> str:
    hours = td.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
