"""deeptrade: batch jobs for quantitative trading research on Slurm GPU clusters."""

__version__ = "0.1.0"
