from deeptrade.io.artifacts import MANIFEST, Artifact, ArtifactStore, Manifest, hash_dir, hash_obj
from deeptrade.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_text

__all__ = [
    "MANIFEST",
    "Artifact",
    "ArtifactStore",
    "Manifest",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "hash_dir",
    "hash_obj",
]
