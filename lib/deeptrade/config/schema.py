"""Typed schemas shared by every job: where artifacts live, how a run behaves, where it runs.

Values live in ``conf/`` (YAML); these classes say which keys exist and their types, so a typo
on the command line or in YAML fails at compose time instead of being silently ignored.
Component configs (data validation, features, models, trainer, strategy) live next to their
components and are imported into the job schemas in ``deeptrade.config.jobs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class PathsConfig:
    root: str = "${oc.env:DEEPTRADE_ROOT,./artifacts}"
    """Artifact store root; on a cluster a shared filesystem path bound into the image."""


@dataclass(kw_only=True)
class RunConfig:
    force: bool = False
    """Rerun a stage even when an artifact with the same inputs and config exists."""
    seed: int = 0
    """Base random seed (ranks and array tasks derive theirs from it)."""
    progress: bool = True
    """Show progress bars (tqdm) on interactive terminals."""


@dataclass(kw_only=True)
class ClusterConfig:
    """Where and how a job runs. One YAML per profile in conf/cluster/."""

    name: str = "local"
    """Profile name, recorded in manifests."""
    executor: str = "local"
    """``local`` runs in-process (or local subprocesses for sweeps); ``slurm`` submits."""
    partition: str | None = None
    qos: str | None = None
    account: str | None = None
    gres: str | None = None
    """e.g. ``gpu:4``; None on CPU-only partitions."""
    constraint: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    """One task per GPU for distributed training."""
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    time_min: int = 60
    array_parallelism: int = 64
    """Max array tasks running at once (``%N`` throttle)."""
    max_array_size: int = 1001
    """Site MaxArraySize: larger sweeps are split into several arrays."""
    max_requeues: int = 3
    """Bound on preemption/timeout requeues of a Checkpointable job."""
    signal_delay_s: int = 90
    """USR2 is sent this long before the time limit so the job can checkpoint."""
    image: str | None = None
    """Apptainer SIF; when set, Python runs inside it via ``apptainer exec``."""
    image_python: str = "3.12"
    """Python minor version inside the image; submit refuses a mismatch with the host."""
    binds: list[str] = field(default_factory=list)
    """Paths bound into the image at the same absolute path (shared filesystems)."""
    apptainer: str = "apptainer"
    setup: list[str] = field(default_factory=list)
    """Shell lines run before the job in the sbatch script (module loads, exports)."""
    precision: str = "auto"
    """Mixed precision for GPU work: auto | fp16 | bf16 | fp32 (auto: from compute capability)."""
    requeue: bool = True
    """Let Slurm requeue the job on node failure / preemption."""
    exclusive: bool = False


@dataclass(kw_only=True)
class JobConfig:
    """Fields every job has; each job's schema extends it."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
