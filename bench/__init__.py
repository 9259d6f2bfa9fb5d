"""Benchmarks that print figures against their targets (not tests). Run each from the project root
as a module, ``.venv/bin/python -m bench.NAME --help``; what they share is in ``bench._common``."""
