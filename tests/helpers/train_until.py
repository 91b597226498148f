"""Train a run with posereg's own entry point and SIGKILL this process at a chosen step (tests only).

    python -m helpers.train_until <run dir> <kill step or -1> <override> ...

The kill happens at the start of training batch `kill step` (global step), before that step runs:
exactly what `kill -9` at that moment does. KILL_SIGNAL=INT (or TERM) in the environment sends that signal
instead (what Ctrl-C or a scheduler does at that moment), at a step rather than after a wall-clock wait.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning.pytorch as pl
from hydra import compose, initialize_config_dir

from posereg.paths import CONF_DIR
from posereg.recipes.train import train_task
from posereg.runs import register_resolvers


class KillAt(pl.Callback):
    """SIGKILL (or KILL_SIGNAL) the process (with KILL_GROUP=1 in the environment: its whole process group,
    e.g. every DDP rank) when training reaches a global step."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.signal = signal.Signals[f"SIG{os.environ.get('KILL_SIGNAL', 'KILL')}"]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            if os.environ.get("KILL_GROUP") == "1":
                os.killpg(os.getpgid(0), self.signal)
            os.kill(os.getpid(), self.signal)


def main(argv: list[str]) -> None:
    run, step, overrides = Path(argv[0]), int(argv[1]), argv[2:]
    if os.environ.get("KILL_SIGNAL") == "INT":  # Ctrl-C in a terminal, even under a shell's background job
        signal.signal(signal.SIGINT, signal.default_int_handler)  # (which starts its children with SIGINT ignored)
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    train_task(cfg, run_path=run, overrides=overrides, extra_callbacks=[KillAt(step)] if step >= 0 else [],
               multirun=False)


if __name__ == "__main__":
    main(sys.argv[1:])
