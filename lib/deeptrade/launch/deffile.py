"""Apptainer definition files: a small parser and the checks our images must pass.

There is no Apptainer on the development machines, and spython lowercases `From:` and misreads
sections, so the images (`Apptainerfile`, `containers/gh200.def`) are validated with this parser
in the unit tests instead. Only single-stage files are supported; that is all we write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Section names Apptainer recognises. A line starting with `%` counts as a section header only
# when it names one of these, so `%s` at the start of a heredoc line in %post is plain text.
KNOWN_SECTIONS = frozenset(
    {
        "arguments",
        "environment",
        "files",
        "help",
        "labels",
        "post",
        "runscript",
        "setup",
        "startscript",
        "test",
        "appenv",
        "appfiles",
        "apphelp",
        "appinstall",
        "applabels",
        "apprun",
        "appstart",
        "apptest",
    }
)
# Bootstrap agents whose `From:` is a registry reference that must carry a tag or digest.
REGISTRY_AGENTS = frozenset({"docker", "library", "oras", "shub"})
# Options that wipe the host environment (SLURM_*, CUDA_VISIBLE_DEVICES, NCCL_*, SUBMITIT_*).
ENV_WIPING_OPTIONS = ("--cleanenv", "--containall")

_SECTION_RE = re.compile(r"^%([A-Za-z]+)\b[ \t]*(.*)$")
_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*:\s*(.*)$")
_CONSTRAINTS_RE = re.compile(r"([\w.-]*constraints[\w.-]*\.txt)")


@dataclass(kw_only=True)
class Section:
    """One `%name [args]` block of a definition file."""

    name: str
    """Lower-case section name without the `%` (e.g. "post")."""
    args: str = ""
    """Text after the name on the header line (e.g. "-c /bin/bash", or an app name)."""
    body: str = ""
    """The lines up to the next section header, joined with newlines."""
    line: int = 0
    """1-based line number of the `%name` header."""


@dataclass(kw_only=True)
class DefFile:
    """A parsed single-stage Apptainer definition file."""

    source: str
    """Where the text came from (a path, or "<string>"), used in error messages."""
    header: dict[str, str] = field(default_factory=dict)
    """Header keys exactly as written (`Bootstrap`, `From`, ...) -> value."""
    sections: list[Section] = field(default_factory=list)
    """Sections in file order; a name may repeat (Apptainer concatenates them)."""

    def get_header(self, key: str) -> str | None:
        """Header value for `key`, looked up case-insensitively as Apptainer does."""
        for k, v in self.header.items():
            if k.lower() == key.lower():
                return v
        return None

    def section(self, name: str) -> str | None:
        """Concatenated body of every `%name` section, or None when there is none."""
        bodies = [s.body for s in self.sections if s.name == name.lower()]
        return "\n".join(bodies) if bodies else None

    @property
    def labels(self) -> dict[str, str]:
        """`%labels` as {key: value}: first word is the key, the rest of the line the value."""
        out: dict[str, str] = {}
        for line in (self.section("labels") or "").splitlines():
            parts = line.strip().split(None, 1)
            if parts and not parts[0].startswith("#"):
                out[parts[0]] = parts[1] if len(parts) > 1 else ""
        return out


def parse_deffile(text: str, *, source: str = "<string>") -> DefFile:
    """Parse definition-file text. Raises ValueError for text Apptainer would not accept."""
    deffile = DefFile(source=source)
    current: Section | None = None
    body: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        match = _SECTION_RE.match(raw)
        if match and match.group(1).lower() in KNOWN_SECTIONS:
            if current is not None:
                current.body = "\n".join(body)
            current = Section(name=match.group(1).lower(), args=match.group(2).strip(), line=lineno)
            deffile.sections.append(current)
            body = []
            continue
        if current is not None:
            # A second Bootstrap after sections starts another stage; Apptainer would build it.
            if re.match(r"^bootstrap\s*:", raw, re.IGNORECASE):
                raise ValueError(
                    f"{source}: line {lineno}: a second `Bootstrap:` starts another build stage; "
                    f"multi-stage definition files are not supported here. Use one stage."
                )
            body.append(raw)
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER_RE.match(stripped)
        if header is None:
            raise ValueError(
                f"{source}: line {lineno}: expected a header line `Key: value` (e.g. "
                f"`Bootstrap: docker`) or a `%section` before any other text, got {raw!r}"
            )
        deffile.header[header.group(1)] = header.group(2).strip()
    if current is not None:
        current.body = "\n".join(body)
    return deffile


def read_deffile(path: str | Path) -> DefFile:
    """Parse the definition file at `path`."""
    path = Path(path)
    return parse_deffile(path.read_text(encoding="utf-8"), source=str(path))


def _find_repo_root(path: Path) -> Path | None:
    """The nearest ancestor of the file that holds a `containers/` directory."""
    for parent in path.resolve().parents:
        if (parent / "containers").is_dir():
            return parent
    return None


def _base_problem(deffile: DefFile) -> str | None:
    """Why the `From:` base image is not pinned, or None when it is."""
    agent = (deffile.get_header("Bootstrap") or "").lower()
    base = deffile.get_header("From")
    if agent not in REGISTRY_AGENTS or base is None:
        return None
    if "@sha256:" in base:
        return None
    name = base.rsplit("/", 1)[-1]
    if ":" not in name:
        return (
            f"{deffile.source}: base image `From: {base}` has no tag, so it floats to `latest`; "
            f"pin an exact tag (e.g. `nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04`) or a digest"
        )
    tag = name.split(":", 1)[1]
    if tag.lower() == "latest":
        return (
            f"{deffile.source}: base image `From: {base}` uses the moving tag `latest`; pin an "
            f"exact tag or a digest (`@sha256:...`)"
        )
    return None


def check_deffile(deffile: DefFile, *, repo_root: Path | None = None) -> list[str]:
    """Every reason `deffile` is not fit for our clusters (empty list: it is)."""
    src = deffile.source
    problems: list[str] = []
    for key in ("Bootstrap", "From"):
        if deffile.get_header(key) is None:
            problems.append(
                f"{src}: missing header `{key}:`; the file must start with e.g. "
                f"`Bootstrap: docker` and `From: nvidia/cuda:<exact tag>`"
            )
    base = _base_problem(deffile)
    if base:
        problems.append(base)

    post = deffile.section("post")
    if post is None or not post.strip():
        problems.append(f"{src}: missing `%post` section; the image must install the project there")

    env = deffile.section("environment") or ""
    if not re.search(r"\bPYTHONNOUSERSITE=1\b", env):
        problems.append(
            f"{src}: `%environment` does not set PYTHONNOUSERSITE=1; without it packages in the "
            f"user's ~/.local (visible through the home bind) shadow the image's. Add "
            f"`export PYTHONNOUSERSITE=1` to %environment"
        )

    if not re.search(r"\b(slurm-client|scontrol)\b", post or ""):
        problems.append(
            f"{src}: `%post` installs no Slurm client tools; checkpointed jobs call `scontrol "
            f"requeue` from inside the image. Install the `slurm-client` package in %post"
        )

    for sec in deffile.sections:
        for offset, text in enumerate(sec.body.splitlines(), start=1):
            for option in ENV_WIPING_OPTIONS:
                if option in text:
                    problems.append(
                        f"{src}: line {sec.line + offset} (%{sec.name}): `{option}` wipes SLURM_*, "
                        f"CUDA_VISIBLE_DEVICES, NCCL_* and SUBMITIT_* from the job's "
                        f"environment; remove it"
                    )

    referenced = sorted(
        {m.group(1) for sec in deffile.sections for m in _CONSTRAINTS_RE.finditer(sec.body)}
    )
    if referenced and repo_root is None:
        problems.append(
            f"{src}: references {', '.join(referenced)} but no containers/ directory was found "
            f"above it; pass repo_root"
        )
    elif repo_root is not None:
        for name in referenced:
            expected = repo_root / "containers" / name
            if not expected.is_file():
                problems.append(
                    f"{src}: references constraints file `{name}`, but {expected} does not "
                    f"exist; create it (one `pkg==version` per line) or fix the name"
                )
    return problems


def validate_deffile(path: str | Path, *, repo_root: Path | None = None) -> list[str]:
    """Problems with the definition file at `path` (empty list: fit for our clusters).

    A file that cannot even be parsed yields a single problem. Constraints files are looked up
    in `<repo_root>/containers/`; by default the repo root is the nearest ancestor of `path`
    that holds a `containers/` directory.
    """
    path = Path(path)
    try:
        deffile = read_deffile(path)
    except ValueError as exc:
        return [str(exc)]
    return check_deffile(deffile, repo_root=repo_root or _find_repo_root(path))


def require_valid_deffile(path: str | Path, *, repo_root: Path | None = None) -> DefFile:
    """Parse and check the definition file; raise ValueError listing every problem."""
    problems = validate_deffile(path, repo_root=repo_root)
    if problems:
        listing = "\n  - ".join(problems)
        raise ValueError(f"{path}: {len(problems)} problem(s) in definition file:\n  - {listing}")
    return read_deffile(path)
