"""Runs the live engine in a process of its own, for the crash/restart tests.

``python engine_proc.py '{"url": ..., "dir": ..., "cycles": ["<iso now>", ...]}'`` reconciles,
runs one cycle per ``now`` and prints a JSON summary. Keys come from the environment, as in
production; ``DEEPTRADE_LIVE_TEST_CRASH_AT`` makes it SIGKILL itself mid-cycle.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from deeptrade.live.broker import AlpacaKeys
from tests.unit.live.harness import build_engine


def main() -> None:
    args = json.loads(sys.argv[1])
    engine = build_engine(Path(args["dir"]), args["url"], AlpacaKeys.from_env())
    report = engine.reconcile()
    out: dict[str, object] = {"resolved": report.resolved, "canceled": report.canceled}
    cycles = []
    for iso in args["cycles"]:
        r = engine.run_cycle(dt.datetime.fromisoformat(iso))
        cycles.append({"status": r.status, "submitted": r.submitted})
    out["cycles"] = cycles
    engine.journal.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
