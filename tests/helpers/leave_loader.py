"""Start a persistent training loader (one worker) mid-epoch, print the pids, then exit or wait (tests only).

    python -m helpers.leave_loader exit|wait

Prints one JSON line: {"main": pid, "workers": [[pid, start time], ...]} (start time: /proc/<pid>/stat field 22,
so that a test can tell a worker from a later process that reuses its pid). `exit` then returns from main with
the loader and its iterator still referenced, as a script that forgets them does; `wait` sleeps until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from posereg.data import build_datamodule
from posereg.paths import CONF_DIR
from posereg.runs import register_resolvers

OVERRIDES = ["debug=tiny", "logger=none", "data.input_size=32", "data.batch_size=2", "data.num_workers=1",
             "data.persistent_workers=true"]
KEPT: list[object] = []  # referenced until the interpreter exits


def start_time(pid: int) -> int:
    """The process's start time in clock ticks after boot (/proc/<pid>/stat field 22)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[19])


def main(mode: str) -> None:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=OVERRIDES)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # mid-epoch: the worker has batches in flight
    KEPT.extend([loader, it])
    workers = [[w.pid, start_time(w.pid)] for w in it._workers]
    print(json.dumps({"main": os.getpid(), "workers": workers}), flush=True)
    if mode == "wait":
        time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1])
