"""Benchmarks of softbayes (not part of the installed package).

Run from the repository root: ``python -m benchmarks --help``.
"""
