"""Self-contained HTML backtest report (plots embedded as base64 PNG, no external files).

Sections appear for what is passed: metrics, equity and drawdown curves, the per-window
out-of-sample table of a walk-forward, a parameter heatmap of a sweep, and the trades. Plots are
drawn with matplotlib's Agg canvas directly (no pyplot, so no global backend state is touched).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deeptrade.backtest.engine import BacktestConfig, BacktestResult
from deeptrade.backtest.walkforward import WalkForwardResult
from deeptrade.io.atomic import atomic_write_text

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } img { max-width: 100%; }
.note { color: #666; font-size: 0.85em; }
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def equity_figure(equity: pd.Series, title: str = "Equity") -> Figure:
    """Equity curve over its drawdown (fraction below the running peak)."""
    fig = Figure(figsize=(10, 5.5), constrained_layout=True)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x = equity.index
    ax1.plot(x, equity.to_numpy(), color="#1f77b4", lw=1.2)
    ax1.set_title(title)
    ax1.set_ylabel("equity")
    ax1.grid(alpha=0.3)
    values = equity.to_numpy(np.float64)
    dd = values / np.maximum.accumulate(values) - 1.0
    ax2.fill_between(x, dd, 0.0, color="#d62728", alpha=0.4, lw=0)
    ax2.set_ylabel("drawdown")
    ax2.grid(alpha=0.3)
    return fig


def heatmap_figure(table: pd.DataFrame, x: str, y: str, metric: str = "sharpe") -> Figure:
    """``metric`` over two grid parameters (mean over symbols and other parameters)."""
    for col in (x, y, metric):
        if col not in table.columns:
            raise ValueError(f"heatmap: column {col!r} is not in the sweep table")
    pivot = table.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
    fig = Figure(figsize=(10, 6), constrained_layout=True)
    ax = fig.subplots()
    data = np.ma.masked_invalid(pivot.to_numpy(np.float64))
    im = ax.imshow(data, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{metric} by {x} x {y}")
    for labels, set_ticks in ((pivot.columns, ax.set_xticks), (pivot.index, ax.set_yticks)):
        ticks = np.unique(np.linspace(0, len(labels) - 1, min(len(labels), 12)).round().astype(int))
        set_ticks(ticks, [str(labels[i]) for i in ticks])
    fig.colorbar(im, ax=ax, label=metric)
    return fig


def _table(df: pd.DataFrame, max_rows: int | None = None) -> str:
    note = ""
    if max_rows is not None and len(df) > max_rows:
        note = f'<p class="note">First {max_rows} of {len(df)} rows.</p>'
        df = df.head(max_rows)
    return df.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0) + note


def _kv(values: Mapping[str, Any]) -> str:
    shown = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in values.values()]
    return _table(pd.DataFrame({"name": list(values), "value": shown}))


def render_report(
    *,
    title: str,
    result: BacktestResult | None = None,
    walk_forward: WalkForwardResult | None = None,
    sweep_table: pd.DataFrame | None = None,
    heatmap: tuple[str, str] | None = None,
    heatmap_metric: str = "sharpe",
    config: BacktestConfig | Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    max_trades: int = 500,
) -> str:
    """The report as one HTML string. ``heatmap=(x, y)`` names two sweep parameters."""
    if result is None and walk_forward is None and sweep_table is None:
        raise ValueError("render_report: pass a result, a walk_forward result or a sweep_table")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if config is not None:
        cfg = dataclasses.asdict(config) if isinstance(config, BacktestConfig) else dict(config)
        parts += ["<h2>Configuration</h2>", _kv(cfg)]
    if extra:
        parts += ["<h2>Run</h2>", _kv(extra)]
    if walk_forward is not None:
        parts += [
            "<h2>Walk-forward: stitched out-of-sample metrics</h2>",
            _kv(walk_forward.metrics),
            _png(equity_figure(walk_forward.equity, "Out-of-sample equity (stitched)")),
            "<h2>Windows</h2>",
            _table(walk_forward.windows),
        ]
    if result is not None:
        parts += [
            "<h2>Metrics</h2>",
            _kv(result.metrics),
            _png(equity_figure(result.equity)),
        ]
    if sweep_table is not None:
        parts.append("<h2>Parameter sweep</h2>")
        if heatmap is not None:
            parts.append(_png(heatmap_figure(sweep_table, *heatmap, metric=heatmap_metric)))
        top = sweep_table.sort_values(heatmap_metric, ascending=False, na_position="last")
        parts += [
            f"<p>Best 20 of {len(sweep_table)} rows by {html.escape(heatmap_metric)}.</p>",
            _table(top, 20),
        ]
    trades = walk_forward.trades if walk_forward is not None else None
    if trades is None and result is not None:
        trades = result.trades
    if trades is not None:
        parts += ["<h2>Trades</h2>", _table(trades, max_trades)]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Render (``render_report`` keywords) and write atomically to ``path``."""
    return atomic_write_text(path, render_report(**kwargs))
