"""The run directory: keys, files (status, metrics, the stored config, checkpoints), locks, migration of stored
configs and opening a finished run (`posereg.runs.open`).

Plain Python without Lightning: the report layer reads runs through it. The training process's side (the run
lifecycle, callbacks, loggers) is `posereg.training`.
"""

from posereg.runs.files import STATUSES, RunDir, find_run_dirs, git_commit
from posereg.runs.keys import defines_run, override_key, register_resolvers, run_dir, run_key
from posereg.runs.metrics import RunMetrics

__all__ = ["STATUSES", "RunDir", "RunMetrics", "defines_run", "find_run_dirs", "git_commit", "override_key",
           "register_resolvers", "run_dir", "run_key"]
