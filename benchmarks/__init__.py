"""Benchmarks of bimmail against real servers (not timed tests: they print figures to compare).

``initial_sync.py`` is the entry point; see ``README.md`` in this directory.
"""
