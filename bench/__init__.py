"""Benchmarks: each script prints a ratio table against plain aiohttp measured in the same run."""
