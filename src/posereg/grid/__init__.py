"""Grids: a multirun template planned cell by cell and launched with Hydra (posereg-sweep's library), what a
grid costs before it runs, and the run directories of `kind: bench` templates."""
