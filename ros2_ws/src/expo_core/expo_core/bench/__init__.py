"""Benchmarks (timing lives here, never in pass/fail tests)."""
