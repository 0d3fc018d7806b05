"""Benchmarks for the bars of SPEC §5; a package so gunicorn can serve bench.capture_app:app."""
