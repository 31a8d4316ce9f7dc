"""The benchmark harness of issue 7: run it with `python bench/run.py` (see run.py)."""
