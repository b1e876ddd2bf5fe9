"""Launch layer: cluster profiles -> submitit executors, sweeps as arrays, stage DAGs."""
