"""Aggregation of per-run metrics into the paper's tables, plots and the README summary."""
