"""Backtesting: a numba engine over target positions, strategies shared with the live job,
grid sweeps, walk-forward analysis, metrics (incl. deflated Sharpe and PBO) and HTML reports.

Modules: ``engine`` (``BacktestConfig``, ``run_backtest``), ``strategies`` (``STRATEGIES``,
``positions_from_predictions``), ``sweep`` (``param_grid``, ``sweep``, ``grid_chunks``,
``merge_results``), ``walkforward`` (``make_windows``, ``walk_forward``), ``metrics``,
``report`` (``write_report``), ``indicators``. Import from the modules; this package imports
nothing, so ``import deeptrade.backtest`` stays cheap.
"""
