"""The Apptainer definition-file parser, and the repo's two images pass our checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeptrade.launch.deffile import (
    parse_deffile,
    read_deffile,
    require_valid_deffile,
    validate_deffile,
)

REPO = Path(__file__).resolve().parents[3]
IMAGES = {
    "v100": REPO / "Apptainerfile",
    "gh200": REPO / "containers" / "gh200.def",
}


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_repo_images_pass_every_check(image: str) -> None:
    assert validate_deffile(IMAGES[image]) == []
    deffile = require_valid_deffile(IMAGES[image])
    for section in ("post", "environment", "files", "runscript", "test", "labels", "help"):
        assert deffile.section(section), f"{image}: %{section} is empty"
    assert deffile.labels["org.opencontainers.image.revision"] == "{{ GIT_COMMIT }}"


def test_images_pin_what_their_hardware_needs() -> None:
    v100, gh200 = read_deffile(IMAGES["v100"]), read_deffile(IMAGES["gh200"])
    assert v100.get_header("From") == "nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04"
    assert 'TORCH_CUDA_ARCH_LIST="7.0"' in (v100.section("post") or "")
    assert v100.labels["deeptrade.torch"].startswith("2.10")
    assert (gh200.get_header("From") or "").startswith("nvidia/cuda:13.")
    assert 'TORCH_CUDA_ARCH_LIST="9.0"' in (gh200.section("post") or "")
    assert gh200.labels["deeptrade.torch"].startswith("2.15")
    # Labels and constraints agree on torch.
    for name, deffile in (("v100", v100), ("gh200", gh200)):
        pins = (REPO / "containers" / f"{name}.constraints.txt").read_text().splitlines()
        assert f"torch=={deffile.labels['deeptrade.torch']}" in pins


def test_parser_preserves_header_case_and_reads_sections() -> None:
    text = """\
# comment
Bootstrap: docker
From: Some/Image:1.2

%post -c /bin/bash
    printf '%s\\n' hi
%s is not a section header
%Environment
    export A=1
%labels
    Author me
    Version 3 beta
"""
    deffile = parse_deffile(text)
    assert deffile.header == {"Bootstrap": "docker", "From": "Some/Image:1.2"}
    assert deffile.get_header("from") == "Some/Image:1.2"
    assert [(s.name, s.args, s.line) for s in deffile.sections] == [
        ("post", "-c /bin/bash", 5),
        ("environment", "", 8),
        ("labels", "", 10),
    ]
    assert "%s is not a section header" in (deffile.section("post") or "")
    assert deffile.labels == {"Author": "me", "Version": "3 beta"}


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the V100 definition inside a fake repo (with containers/), with one edit."""
    text = IMAGES["v100"].read_text()
    assert old in text, old
    (tmp_path / "containers").mkdir(exist_ok=True)
    for name in ("v100.constraints.txt", "gh200.constraints.txt"):
        (tmp_path / "containers" / name).write_text("torch==2.10.0\n")
    path = tmp_path / "Apptainerfile"
    path.write_text(text.replace(old, new, 1))
    return path


def test_missing_post_is_reported(tmp_path: Path) -> None:
    path = _variant(tmp_path, "%post\n", "%setup\n")
    problems = validate_deffile(path)
    assert any("missing `%post` section" in p for p in problems), problems
    with pytest.raises(ValueError, match="missing `%post` section"):
        require_valid_deffile(path)


@pytest.mark.parametrize(
    ("base", "why"),
    [("nvidia/cuda", "has no tag"), ("nvidia/cuda:latest", "moving tag `latest`")],
)
def test_unpinned_base_is_reported(tmp_path: Path, base: str, why: str) -> None:
    path = _variant(tmp_path, "nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04", base)
    with pytest.raises(ValueError, match=why):
        require_valid_deffile(path)


def test_digest_pinned_base_passes(tmp_path: Path) -> None:
    path = _variant(tmp_path, ":12.8.1-cudnn-devel-ubuntu24.04", "@sha256:" + "ab" * 32)
    assert validate_deffile(path) == []


@pytest.mark.parametrize("option", ["--cleanenv", "--containall"])
def test_environment_wiping_options_are_reported_with_line(tmp_path: Path, option: str) -> None:
    path = _variant(tmp_path, "exec deeptrade", f"exec apptainer exec {option} x deeptrade")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if option in t)
    problems = validate_deffile(path)
    assert problems == [
        f"{path}: line {line} (%runscript): `{option}` wipes SLURM_*, CUDA_VISIBLE_DEVICES, "
        f"NCCL_* and SUBMITIT_* from the job's environment; remove it"
    ]


def test_missing_header_nousersite_slurm_and_constraints_are_reported(tmp_path: Path) -> None:
    path = _variant(tmp_path, "Bootstrap: docker\n", "")
    text = path.read_text()
    text = text.replace("export PYTHONNOUSERSITE=1\n", "")
    text = text.replace("libaio-dev slurm-client", "libaio-dev")
    text = text.replace("# slurm-client: checkpointed jobs requeue themselves with `scontrol", "#")
    text = text.replace("command -v scontrol", "command -v true")
    path.write_text(text)
    (tmp_path / "containers" / "v100.constraints.txt").unlink()
    problems = "\n".join(validate_deffile(path))
    assert "missing header `Bootstrap:`" in problems
    assert "does not set PYTHONNOUSERSITE=1" in problems
    assert "installs no Slurm client tools" in problems
    assert "constraints file `v100.constraints.txt`" in problems


def test_unparseable_text_and_multi_stage_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line 2: expected a header line"):
        parse_deffile("Bootstrap: docker\nthis is not a header\n%post\n  true\n")
    with pytest.raises(ValueError, match="line 4: a second `Bootstrap:`"):
        parse_deffile("Bootstrap: docker\nFrom: a:1\n%post\nBootstrap: docker\n")
    bad = tmp_path / "bad.def"
    bad.write_text("oops\n")
    assert validate_deffile(bad)[0].startswith(f"{bad}: line 1: expected a header line")
