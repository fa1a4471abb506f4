"""Benchmarks: `uv run python -m bench` (see README, "Performance")."""
