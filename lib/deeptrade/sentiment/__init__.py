"""News sentiment: ingest -> FinBERT scores (sharded, resumable) -> point-in-time indicators.

Modules (imported explicitly; this package imports nothing heavy on its own):

- ``news``: files and the Alpaca News API -> one normalised, deduplicated table.
- ``scorer``: offline sequence-classifier scoring with length-bucketed batches.
- ``shard``: stable-hash sharding over Slurm array tasks / MPI ranks, resumable part files.
- ``indicators``: 12 ``sent_*`` indicators per symbol and bar, cut off at close - latency.
- ``tiny``: random-weight BERT classifiers built locally (tests, smoke runs, benchmarks).
"""
