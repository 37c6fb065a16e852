"""The stages: one module each, one Stage protocol (base.py), one runner (runner.py)."""
