"""``deeptrade`` command: run, submit, status, dag, cancel — thin wrappers over the launch layer.

deeptrade run <job> [overrides]            in-process (``-m`` sweeps go to our launcher)
deeptrade submit <job> [overrides]         one job (or ``-m`` sweep) on cluster=<profile>
deeptrade status <sweep-or-dag-id> [--wait]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from deeptrade.launch.task import JOBS


def _root(arg: str | None) -> Path:
    return Path(arg or os.environ.get("DEEPTRADE_ROOT", "./artifacts")).expanduser().resolve()


def cmd_run(job: str, args: list[str]) -> int:
    from deeptrade.launch.task import job_module

    module = job_module(job)
    sys.argv = [f"jobs.{job}", *args]
    module.main()
    return 0


def expand_sweep(args: list[str]) -> list[list[str]]:
    """Hydra's cartesian product of ``a=1,2 b=x,y`` (the same expansion as ``-m``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(args)
    return [list(p) for batch in BasicSweeper.split_arguments(parsed, None) for p in batch]


# Keys already part of a model artifact's name; other swept keys become its tag.
_NAMED_KEYS = {"symbol", "timeframe", "model", "model.name", "cluster"}


def tag_points(points: list[list[str]]) -> list[list[str]]:
    """Give each point of a train sweep a ``train.tag`` from the keys that vary across points,
    so 100 configs write 100 model artifacts instead of overwriting one another."""
    values: dict[str, set[str]] = {}
    for p in points:
        for o in p:
            k, _, v = o.partition("=")
            values.setdefault(k, set()).add(v)
    varying = [k for k, v in values.items() if len(v) > 1 and k not in _NAMED_KEYS]
    if not varying or "train.tag" in values:
        return points
    out = []
    for p in points:
        kv = dict(o.partition("=")[::2] for o in p)
        tag = "-".join(f"{k.rsplit('.', 1)[-1]}{kv[k]}" for k in varying if k in kv)
        out.append([*p, f"train.tag={tag}"])
    return out


def cmd_submit(job: str, args: list[str], *, wait: bool) -> int:
    """Submit one job, or a ``-m`` sweep as one array.

    Sweeps are expanded here rather than through Hydra's multirun, which composes every point
    before launching (seconds for a large sweep): we compose the first point and one point per
    distinct config-group choice, which catches every key and group typo; nodes compose the rest.
    """
    from deeptrade.config.compose import config_groups, load
    from deeptrade.launch.sweeps import format_status, submit_sweep
    from deeptrade.launch.sweeps import wait as wait_sweep

    multirun = "-m" in args or "--multirun" in args
    args = [a for a in args if a not in ("-m", "--multirun")]
    points = expand_sweep(args) if multirun else [args]
    if job == "train" and multirun:
        points = tag_points(points)
    groups = config_groups()
    checked: set[tuple[str, ...]] = set()
    cfg = None
    for point in points:
        choice = tuple(o for o in point if o.split("=", 1)[0].lstrip("+~") in groups)
        if choice not in checked:
            checked.add(choice)
            point_cfg = load(job, point)  # a typo never reaches the queue
            cfg = cfg or point_cfg
    assert cfg is not None
    root = Path(cfg.paths.root).expanduser().resolve()
    record = submit_sweep(job, [[*p, f"paths.root={root}"] for p in points], cfg.cluster, root)
    if multirun:
        print(
            f"sweep {record.id}: {len(points)} task(s) of '{job}' on {record.cluster}"
            + (f" (array {', '.join(record.array_ids)})" if record.array_ids else "")
        )
        print(f"  follow it with: deeptrade status {record.id}")
    else:
        task = record.tasks[0]
        print(
            f"submitted {job} as {record.id} (job {task.job_id or 'in-process'}, "
            f"state {task.state or 'PENDING'})"
        )
    if wait and record.array_ids:
        status = wait_sweep(record)
        print(format_status(record, status))
        return 0 if all(s.state == "COMPLETED" for s in status) else 1
    return 0 if all(t.state in (None, "COMPLETED") for t in record.tasks) else 1


def cmd_status(ident: str, root: Path, *, wait: bool, as_json: bool) -> int:
    from deeptrade.launch.dag import DagRecord, dag_status, wait_dag
    from deeptrade.launch.sweeps import SweepRecord, format_status, launch_dir, sweep_status
    from deeptrade.launch.sweeps import wait as wait_sweep

    dag_path = launch_dir(root) / "dags" / f"{ident}.json"
    if dag_path.is_file():
        dag = DagRecord.load(dag_path)
        rows = wait_dag(dag) if wait else dag_status(dag)
        if as_json:
            print(json.dumps(rows, default=str))
        else:
            print(f"dag {dag.id}  cluster={dag.cluster}")
            for r in rows:
                print(
                    f"  {r['stage']:<12} {r['job_id'] or '-':<10} {r['state']:<10} {r.get('why') or ''}"
                )
        return 0 if all(r["state"] in ("COMPLETED", "SKIPPED") for r in rows) else 1
    record = SweepRecord.load(root, ident)
    status = wait_sweep(record) if wait else sweep_status(record)
    if as_json:
        print(json.dumps([s.__dict__ for s in status], default=str))
    else:
        print(format_status(record, status))
    return 0


def cmd_queue(root: Path, *, limit: int) -> int:
    from deeptrade.launch.queue import format_queue, queue_view

    print(format_queue(queue_view(root, limit=limit)))
    return 0


def cmd_retry(ident: str, root: Path) -> int:
    from deeptrade.launch.queue import retry_failed

    retry = retry_failed(root, ident)
    if retry is None:
        print(f"{ident}: no failed tasks; nothing resubmitted")
    else:
        print(f"sweep {retry.id}: resubmitted {len(retry.tasks)} failed task(s) of {ident}")
    return 0


def cmd_results(ident: str, root: Path, out: str | None) -> int:
    from deeptrade.launch.sweeps import SweepRecord, results_table

    table = results_table(SweepRecord.load(root, ident))
    if out:
        table.to_csv(out, index=False) if out.endswith(".csv") else table.to_parquet(
            out, index=False
        )
        print(f"wrote {len(table)} rows to {out}")
    else:
        print(table.to_string(index=False, max_colwidth=40))
    return 0


def cmd_live_status(release: str, root: Path) -> int:
    from deeptrade.io import ArtifactStore
    from deeptrade.live.run import live_status

    print(json.dumps(live_status(ArtifactStore(root), release), indent=1, default=str))
    return 0


def cmd_publish(backtest: str, name: str, root: Path) -> int:
    """Publish a backtest run under ``releases/<name>``, with the config it ran with."""
    from omegaconf import OmegaConf

    from deeptrade.config.jobs import DeeptradeConfig, register
    from deeptrade.io import ArtifactStore
    from deeptrade.live.publish import publish

    register()
    store = ArtifactStore(root)
    art = store.require("backtests", backtest.removeprefix("backtests/"))
    merged = OmegaConf.merge(OmegaConf.structured(DeeptradeConfig), art.manifest.config)
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, DeeptradeConfig)
    cfg.release.name, cfg.release.backtest = name, art.manifest.name
    cfg.paths.root = str(root)
    print(json.dumps(publish(cfg, store), indent=1, default=str))
    return 0


def cmd_cancel(ident: str, root: Path) -> int:
    from deeptrade.launch import scheduler
    from deeptrade.launch.dag import DagRecord
    from deeptrade.launch.sweeps import SweepRecord, launch_dir

    dag_path = launch_dir(root) / "dags" / f"{ident}.json"
    if dag_path.is_file():
        ids = [s.job_id for s in DagRecord.load(dag_path).stages if s.job_id]
    else:
        ids = SweepRecord.load(root, ident).array_ids
    scheduler.scancel([i for i in ids if i])
    print(f"cancelled {ident}: {' '.join(i for i in ids if i) or 'nothing to cancel'}")
    return 0


def cmd_pipeline(args: list[str], *, wait: bool) -> int:
    from deeptrade.launch.pipeline import run_pipeline

    record, rows = run_pipeline(args, wait=wait)
    if record is None:
        print("pipeline: every stage is up to date; nothing submitted")
    else:
        print(f"pipeline {record.id} on {record.cluster}  (deeptrade status {record.id})")
    for r in rows:
        print(f"  {r['stage']:<10} {r['state']:<10} {r.get('why') or ''}")
    report = _report_path(args)
    if report is not None:
        print(f"report: {report}")
    ok = ("COMPLETED", "SKIPPED", "PENDING", "RUNNING")
    return 0 if all(r["state"] in ok for r in rows) else 1


def _report_path(args: list[str]) -> Path | None:
    """The walk-forward report of this pipeline's backtest, once it exists."""
    from deeptrade.backtest.stage import artifact_name
    from deeptrade.config.compose import load

    cfg = load("backtest", args)
    path = Path(cfg.paths.root).resolve() / "backtests" / artifact_name(cfg) / "report.html"
    return path if path.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deeptrade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a job in this process (Hydra overrides follow)")
    r.add_argument("job", choices=JOBS)
    s = sub.add_parser("submit", help="submit a job or a -m sweep to the cluster profile")
    s.add_argument("job", choices=JOBS)
    s.add_argument("--wait", action="store_true", help="block until it finishes")
    st = sub.add_parser("status", help="state of a sweep or DAG")
    st.add_argument("id")
    st.add_argument("--root", help="artifact store root (default $DEEPTRADE_ROOT or ./artifacts)")
    st.add_argument("--wait", action="store_true")
    st.add_argument("--json", action="store_true")
    pl = sub.add_parser(
        "pipeline", help="ingest -> features -> ... as a stage DAG (overrides follow)"
    )
    pl.add_argument("--wait", action="store_true")
    rs = sub.add_parser("results", help="one row per sweep task: overrides, state, metrics")
    rs.add_argument("id")
    rs.add_argument("--root")
    rs.add_argument("--out", help="write CSV (.csv) or Parquet instead of printing")
    lv = sub.add_parser("live", help="live trading: `deeptrade live status --release NAME`")
    lv.add_argument("action", choices=["status"])
    lv.add_argument("--release", default="latest")
    lv.add_argument("--root")
    pb = sub.add_parser("publish", help="publish a model-driven backtest run as a release")
    pb.add_argument("backtest", help="backtests/<name> (as printed by the backtest job)")
    pb.add_argument("--name", required=True)
    pb.add_argument("--root")
    q = sub.add_parser("queue", help="suite jobs grouped by sweep and pipeline")
    q.add_argument("--root")
    q.add_argument("--limit", type=int, default=20)
    rt = sub.add_parser("retry", help="resubmit the failed tasks of a sweep as a new array")
    rt.add_argument("id")
    rt.add_argument("--failed", action="store_true", required=True)
    rt.add_argument("--root")
    c = sub.add_parser("cancel", help="cancel every job of a sweep or DAG")
    c.add_argument("id")
    c.add_argument("--root")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Hydra overrides (and -m) pass through untouched after the job name.
    if argv and argv[0] == "pipeline":
        try:
            return cmd_pipeline([a for a in argv[1:] if a != "--wait"], wait="--wait" in argv)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if argv and argv[0] in ("run", "submit") and len(argv) > 1:
        known = [a for a in argv[2:] if a == "--wait"]
        rest = [a for a in argv[2:] if a != "--wait"]
        ns = parser.parse_args([argv[0], argv[1], *known])
        try:
            if ns.cmd == "run":
                return cmd_run(ns.job, rest)
            return cmd_submit(ns.job, rest, wait=ns.wait)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    ns = parser.parse_args(argv)
    args: Any = ns
    try:
        if args.cmd == "status":
            return cmd_status(args.id, _root(args.root), wait=args.wait, as_json=args.json)
        if args.cmd == "results":
            return cmd_results(args.id, _root(args.root), args.out)
        if args.cmd == "live":
            return cmd_live_status(args.release, _root(args.root))
        if args.cmd == "publish":
            return cmd_publish(args.backtest, args.name, _root(args.root))
        if args.cmd == "queue":
            return cmd_queue(_root(args.root), limit=args.limit)
        if args.cmd == "retry":
            return cmd_retry(args.id, _root(args.root))
        if args.cmd == "cancel":
            return cmd_cancel(args.id, _root(args.root))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.cmd}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
