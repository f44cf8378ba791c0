"""Benchmarks: each prints ratios against plain aiohttp (and its peers) measured in the same run.

Run each from the repository root as ``python -m bench.<name>`` (``make bench`` runs them
all): ``overhead``, ``uploads``, ``resumable``, ``echo`` and ``broadcast``; ``soak`` is a
bounded load test (``make soak``). What they share is in ``bench/_harness.py``.
"""
