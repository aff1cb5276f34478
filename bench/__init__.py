"""ckpt's benchmark: `python bench/run.py` (see bench/run.py and bench/RESULTS.md)."""
