"""Programs the tests run in subprocesses (a training that kills itself at a given step, ...)."""
