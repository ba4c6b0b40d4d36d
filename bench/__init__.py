"""Benchmarks of the pond against bare Delta Lake / DuckDB / pyarrow baselines.

Run `python -m bench.run [--quick]` from the repository root (`make bench`).
"""
