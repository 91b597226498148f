"""Benchmarks: speed, memory and accuracy measured side by side in one process, reported as ratios."""
