"""Run directories: keys, files (status, metrics), locks, safe checkpoints and the run lifecycle.

`posereg.runs.lifecycle.run_lifecycle` (imported on its own: it needs Lightning) is what a training entry
point wraps its recipe in; everything else here is plain Python and safe to import from the report layer.
"""

from posereg.runs.files import STATUSES, RunDir, git_commit
from posereg.runs.keys import defines_run, override_key, register_resolvers, run_dir, run_key

__all__ = ["STATUSES", "RunDir", "defines_run", "git_commit", "override_key", "register_resolvers", "run_dir",
           "run_key"]
