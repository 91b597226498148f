"""Data-loader workers: single-threaded OpenCV plus Lightning's per-worker seeding."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from functools import partial

import cv2
import torch.multiprocessing as mp
from lightning.fabric.utilities.seed import pl_worker_init_function


def init_loader_worker(worker_id: int, rank: int | None = None, fresh_process: bool = False) -> None:
    """Leave scheduler signals to the trainer, single-thread OpenCV in a fresh worker, seed as Lightning does."""
    # A signal to the whole process group (timeout, scancel, kill -- -PGID) reaches the workers too: the trainer
    # handles it (last.ckpt, "interrupted") and needs its workers for that, then ends them itself; a parent that
    # dies outright is noticed by each worker's watchdog.
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    if fresh_process:
        # only here: in a forked child whose parent already ran OpenCV's pool, setNumThreads deadlocks
        cv2.setNumThreads(1)
    # Lightning only installs its seeding init when a loader has none: keep its behaviour
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id, rank=rank)


def loader_start_method() -> str:
    """How loader workers start: this process's start method, or the platform's default where a launcher set its own.

    joblib's loky workers (hydra/launcher=joblib) make "loky" the default method, whose Process a DataLoader
    cannot start (AttributeError: 'Process' object has no attribute 'env').
    """
    method = mp.get_start_method(allow_none=True) or mp.get_context().get_start_method()
    return method if method in ("fork", "spawn", "forkserver") else mp.get_all_start_methods()[0]


def loader_worker_init(rank: int | None = None, start_method: str | None = None) -> Callable[[int], None]:
    """Worker init for a loader started from this process; makes this process's OpenCV single-threaded.

    cv2's own thread pool in each of N workers oversubscribes the cores the trainer computes on, and on
    small crops costs ~10 % more CPU per sample than it saves (``posereg-bench data``). Forked workers
    inherit the setting from this process; spawned ones set it themselves.
    """
    cv2.setNumThreads(1)
    method = start_method or loader_start_method()
    return partial(init_loader_worker, rank=rank, fresh_process=method != "fork")
