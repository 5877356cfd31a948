"""The benchmark scenarios, one module each (see `harness.py`); `run.py` finds them."""
