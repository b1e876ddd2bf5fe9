"""Running Python inside an Apptainer image: the exact ``exec`` line and the version check."""

from __future__ import annotations

import shlex
import sys

from deeptrade.config.schema import ClusterConfig

# Flags that would break Slurm jobs inside the image: --cleanenv strips SLURM_*,
# CUDA_VISIBLE_DEVICES, NCCL_* and SUBMITIT_*, which submitit and torch.distributed need.
FORBIDDEN_FLAGS = ("--cleanenv", "-e", "--containall", "-C")


def python_command(cluster: ClusterConfig) -> str | None:
    """The command submitit uses to start Python on the node (None: the host's own)."""
    if not cluster.image:
        return None
    parts = [cluster.apptainer, "exec", "--nv"]
    for bind in cluster.binds:
        parts += ["--bind", bind]
    parts += [cluster.image, "python3"]
    line = shlex.join(parts)
    assert not any(f" {flag} " in f" {line} " for flag in FORBIDDEN_FLAGS), line
    return line


def check_python_version(cluster: ClusterConfig, host: tuple[int, int] | None = None) -> None:
    """submitit pickles the callable with cloudpickle: host and image need the same minor."""
    if not cluster.image:
        return
    host = host or (sys.version_info.major, sys.version_info.minor)
    host_s = f"{host[0]}.{host[1]}"
    if cluster.image_python != host_s:
        raise ValueError(
            f"Profile '{cluster.name}' runs Python {cluster.image_python} inside {cluster.image}, "
            f"but you are submitting from Python {host_s}. submitit pickles the job with "
            f"cloudpickle, which needs the same minor version on both sides. Submit from inside "
            f"the image (`apptainer exec {cluster.image} deeptrade submit ...`) or from a "
            f"Python {cluster.image_python} environment."
        )
