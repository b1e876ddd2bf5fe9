"""Compose, validate and type a job's config; the one place overrides are checked.

Hydra already rejects ``trainer.lrr=1`` against a typed schema, but its message does not list
what *is* valid, and ``+trainer.lrr=1`` slips past the schema entirely. Both go through
``check_overrides`` first, which fails with the valid keys and a "did you mean".
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[3]


def conf_dir() -> Path:
    """``conf/`` of this checkout (or ``$DEEPTRADE_CONF``): jobs compose from it on every host."""
    return Path(os.environ.get("DEEPTRADE_CONF", REPO_ROOT / "conf")).resolve()


def config_groups() -> set[str]:
    return {p.name for p in conf_dir().iterdir() if p.is_dir()}


def _parse(overrides: Sequence[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except Exception as e:  # hydra raises OverrideParseException with a good message
        raise ValueError(f"Could not parse overrides {list(overrides)}: {e}") from e


def _first_value(ov: Any) -> str:
    if ov.is_sweep_override():
        return str(next(iter(ov.sweep_string_iterator())))
    return str(ov.get_value_element_as_str())


def _compose_raw(job: str, overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from deeptrade.config.jobs import register

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name=job):
        return compose(config_name=job, overrides=list(overrides))


def _valid_keys(node: Any) -> list[str]:
    return sorted(str(k) for k in node) if isinstance(node, DictConfig) else []


def _unknown_key_error(job: str, path: list[str], node: Any, bad: str, source: str) -> ValueError:
    where = ".".join(path) or "<top level>"
    keys = _valid_keys(node)
    hint = difflib.get_close_matches(bad, keys, n=1)
    did_you_mean = f" Did you mean '{'.'.join([*path, hint[0]])}'?" if hint else ""
    return ValueError(
        f"Unknown config key '{'.'.join([*path, bad])}' ({source}) for job '{job}'.{did_you_mean}\n"
        f"Valid keys under {where}: {', '.join(keys) or '(none: it is a value)'}"
    )


def _is_open_dict(node: Any) -> bool:
    """A plain ``dict[str, ...]`` field (no schema): any key is allowed there."""
    return isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict


def check_overrides(job: str, overrides: Sequence[str]) -> None:
    """Fail fast, with the valid keys listed, on an override naming a key the schema lacks."""
    parsed = _parse(overrides)
    groups = config_groups()
    group_choices = [
        f"{ov.key_or_group}={_first_value(ov)}"
        for ov in parsed
        if ov.key_or_group.split("/")[0] in groups and not ov.is_delete()
    ]
    base = _compose_raw(job, group_choices)
    for ov in parsed:
        key = ov.key_or_group
        if key.startswith("hydra") or key.split("/")[0] in groups:
            continue
        node: Any = base
        path: list[str] = []
        for part in key.split("."):
            if _is_open_dict(node):
                break
            if not isinstance(node, DictConfig) or part not in node:
                raise _unknown_key_error(job, path, node, part, f"override '{ov.input_line}'")
            node = node[part]
            path.append(part)


def check_no_unknown_keys(
    job: str, cfg: Any, schema: Any = None, path: list[str] | None = None
) -> None:
    """Keys present in the composed config but absent from its dataclass schema (``+key=``)."""
    import dataclasses

    path = path or []
    if isinstance(cfg, DictConfig | ListConfig) and cfg._is_none():
        return
    if not isinstance(cfg, DictConfig):
        if isinstance(cfg, ListConfig):
            for item in cfg:
                check_no_unknown_keys(job, item, None, path)
        return
    obj_type = OmegaConf.get_type(cfg)
    if obj_type is not None and dataclasses.is_dataclass(obj_type):
        names = {f.name for f in dataclasses.fields(obj_type)}
        for key in cfg:
            if key not in names:
                valid = DictConfig({n: None for n in sorted(names)})
                raise _unknown_key_error(job, path, valid, str(key), "not in the schema")
    for key in cfg:
        check_no_unknown_keys(job, cfg._get_node(key), None, [*path, str(key)])


def compose(job: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The job's config as Hydra composes it, after our key checks; raises ValueError."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    check_overrides(job, overrides)
    try:
        cfg = _compose_raw(job, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        detail = f"{e}\n{e.__cause__}" if e.__cause__ else str(e)
        raise ValueError(
            f"Invalid config for job '{job}' with overrides {list(overrides)}: {detail}"
        ) from e
    check_no_unknown_keys(job, cfg)
    return cfg


def to_typed(cfg: DictConfig) -> Any:
    """Resolve interpolations and build the dataclass instances the job code works with."""
    return OmegaConf.to_object(cfg)


def to_container(cfg: Any) -> dict[str, Any]:
    """Plain resolved dict of a DictConfig or a typed config (for manifests and hashing)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]


def load(job: str, overrides: Sequence[str] = ()) -> Any:
    """Compose + type: what ``deeptrade run`` and Slurm tasks call."""
    return to_typed(compose(job, overrides))


def hydra_entry(job: str, run: Callable[[Any], Any]) -> Callable[[], Any]:
    """Build a job's ``main()``: our override checks, then Hydra (so ``-m`` sweeps work)."""
    import sys

    import hydra

    from deeptrade.config.jobs import register

    def task(cfg: DictConfig) -> Any:
        check_no_unknown_keys(job, cfg)
        return run(to_typed(cfg))

    def main() -> Any:
        register()
        args = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        if not any(a in ("--help", "-h", "--hydra-help", "--info") for a in sys.argv[1:]):
            try:
                check_overrides(job, args)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                raise SystemExit(2) from None
        return hydra.main(config_path=str(conf_dir()), config_name=job, version_base="1.3")(task)()

    return main
