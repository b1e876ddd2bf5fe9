"""The HTML report is one self-contained file with every section that was asked for."""

from __future__ import annotations

import re

from deeptrade.backtest.engine import BacktestConfig, run_backtest
from deeptrade.backtest.report import render_report, write_report
from deeptrade.backtest.strategies import MACross
from deeptrade.backtest.sweep import param_grid, sweep
from deeptrade.backtest.walkforward import make_windows, walk_forward


def test_report_has_every_section_and_no_external_files(spx, tmp_path):
    cfg = BacktestConfig(commission_bps=5, direction="long_only")
    grid = param_grid("ma_cross", fast=[3, 5, 8], slow=[20, 30])
    table = sweep(spx, "ma_cross", grid, cfg).table
    wf = walk_forward(spx, "ma_cross", grid, make_windows(len(spx), 250, 100), cfg)
    single = run_backtest(spx, MACross.signals(spx, fast=5, slow=20), cfg)
    path = write_report(
        tmp_path / "out" / "report.html",
        title="SPX <ma_cross>",
        result=single,
        walk_forward=wf,
        sweep_table=table,
        heatmap=("fast", "slow"),
        config=cfg,
        extra={"pbo": 0.25},
    )
    html = path.read_text()
    assert "SPX &lt;ma_cross&gt;" in html  # escaped
    for heading in (
        "Configuration",
        "Walk-forward",
        "Windows",
        "Metrics",
        "Parameter sweep",
        "Trades",
    ):
        assert f"<h2>{heading}" in html, heading
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # stitched equity, single-run equity, heatmap
    assert all(len(img) > 1000 for img in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing to fetch
    assert not list(path.parent.glob(".tmp-*"))  # written atomically


def test_render_needs_something_to_report():
    import pytest

    with pytest.raises(ValueError, match="pass a result"):
        render_report(title="empty")
