"""Data-loader workers: single-threaded OpenCV, Lightning's per-worker seeding, and an end tied to their parent's."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing import util
from typing import Any

import cv2
import torch.multiprocessing as mp
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

PR_SET_PDEATHSIG = 1
# (pid, start method) -> the flag its loaders' workers read: a forked child that builds loaders gets its own
_EXITING: dict[tuple[int, str], Any] = {}


def init_loader_worker(worker_id: int, rank: int | None = None, fresh_process: bool = False,
                       parent_exiting: Any = None) -> None:
    """Leave scheduler signals to the trainer, end with the parent, single-thread OpenCV, seed as Lightning does."""
    # A signal to the whole process group (timeout, scancel, kill -- -PGID) reaches the workers too: the trainer
    # handles it (last.ckpt, "interrupted") and needs its workers for that, then ends them itself. SIGTERM still
    # ends a worker whose parent is exiting (multiprocessing terminates daemonic children at exit, then joins
    # them) or gone (Linux sends it when the parent dies; elsewhere torch's watchdog notices within seconds).
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, partial(_end_if_parent_exits, os.getppid(), parent_exiting))
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if fresh_process:
        # only here: in a forked child whose parent already ran OpenCV's pool, setNumThreads deadlocks
        cv2.setNumThreads(1)
    # Lightning only installs its seeding init when a loader has none: keep its behaviour
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id, rank=rank)


def _end_if_parent_exits(parent: int, parent_exiting: Any, signum: int, frame: Any) -> None:
    """A worker's SIGTERM handler: ignored while its parent runs, the worker's end once the parent exits or is gone."""
    # exit status 0: the parent's SIGCHLD handler (torch) must not report a worker failure while it exits
    if os.getppid() != parent or (parent_exiting is not None and parent_exiting.value):
        os._exit(0)


def parent_exiting_flag(start_method: str) -> Any:
    """This process's shared flag, set when it starts exiting, for the workers it starts with `start_method`."""
    key = (os.getpid(), start_method)
    if key not in _EXITING:
        flag = mp.get_context(start_method).RawValue(ctypes.c_bool, False)
        # run by multiprocessing's exit function (interpreter exit, or the end of a multiprocessing child)
        # before it sends SIGTERM to its daemonic children (the workers) and joins them
        util.Finalize(None, partial(setattr, flag, "value", True), exitpriority=100)
        _EXITING[key] = flag
    return _EXITING[key]


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
    return partial(init_loader_worker, rank=rank, fresh_process=method != "fork",
                   parent_exiting=parent_exiting_flag(method))


def end_workers(loader: DataLoader) -> None:
    """End a loader's persistent worker processes now, as Lightning's teardown does; a later pass starts new ones."""
    iterator, loader._iterator = getattr(loader, "_iterator", None), None
    if isinstance(iterator, _MultiProcessingDataLoaderIter):
        iterator._shutdown_workers()


@contextmanager
def closing_loader(loader: DataLoader) -> Iterator[DataLoader]:
    """`loader` for a `with` block that ends its persistent workers on the way out (errors included)."""
    try:
        yield loader
    finally:
        end_workers(loader)
