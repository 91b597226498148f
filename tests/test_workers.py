"""Loader workers run OpenCV single-threaded, never deadlock on it, and keep Lightning's per-worker seeding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset

from posereg.data.datamodule import build_datamodule
from posereg.data.workers import init_loader_worker, loader_worker_init

TESTS = Path(__file__).resolve().parent


class WorkerState(Dataset):
    """Runs an OpenCV op and reports the worker's OpenCV thread count and torch seed."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[int, int]:
        cv2.warpAffine(np.zeros((256, 256, 3), np.uint8), np.eye(2, 3), (256, 256))
        return cv2.getNumThreads(), torch.initial_seed()


def _states(init, context: str = "fork", workers: int = 2) -> list[tuple[int, int]]:
    # timeout: a deadlocked worker fails the test instead of hanging it
    loader = DataLoader(WorkerState(), batch_size=None, num_workers=workers, worker_init_fn=init,
                        multiprocessing_context=context, timeout=120)
    return [(int(a), int(b)) for a, b in loader]


def _use_opencv_pool() -> None:
    cv2.setNumThreads(2)
    for _ in range(3):
        cv2.resize(np.zeros((1024, 1024, 3), np.uint8), (512, 512))


def test_forked_workers_after_the_parent_used_opencv_threads(monkeypatch):
    threads = cv2.getNumThreads()
    try:
        _use_opencv_pool()  # the case where cv2.setNumThreads in a forked child deadlocks
        L.seed_everything(7, workers=True, verbose=False)  # sets PL_SEED_WORKERS for the workers
        ours = _states(loader_worker_init(rank=0, start_method="fork"))
        assert cv2.getNumThreads() == 1  # set in the parent, inherited by the forks
        L.seed_everything(7, workers=True, verbose=False)
        theirs = _states(partial(pl_worker_init_function, rank=0))
    finally:
        cv2.setNumThreads(threads)
    assert [t for t, _ in ours] == [1, 1]
    assert [s for _, s in ours] == [s for _, s in theirs]  # identical per-worker seeds
    assert ours[0][1] != ours[1][1]


def test_spawned_worker_sets_its_own_opencv_threads():
    threads = cv2.getNumThreads()
    try:
        _use_opencv_pool()
        init = loader_worker_init(start_method="spawn")
        assert init.keywords["fresh_process"]
        assert _states(init, context="spawn", workers=1)[0][0] == 1
    finally:
        cv2.setNumThreads(threads)


@pytest.mark.parametrize("workers", [0, 1])
def test_datamodule_loaders_install_the_worker_init(make_cfg, workers):
    dm = build_datamodule(make_cfg("data.input_size=64", f"data.num_workers={workers}"))
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        if workers:
            assert loader.worker_init_fn.func is init_loader_worker
        else:
            assert loader.worker_init_fn is None


def _first_batch_shape_in_a_loky_worker(cfg) -> tuple[str, tuple[int, ...]]:
    import multiprocessing

    dm = build_datamodule(cfg)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return multiprocessing.get_start_method(), tuple(batch["joints_2d"].shape)


def test_loader_workers_start_inside_joblib_workers(make_cfg):
    # posereg-sweep hydra/launcher=joblib with data.num_workers>0: loky's default start method cannot start them
    from joblib import Parallel, delayed

    cfg = make_cfg("data.input_size=64", "data.num_workers=1", "data.batch_size=4")
    [(method, shape)] = Parallel(n_jobs=2)([delayed(_first_batch_shape_in_a_loky_worker)(cfg)])
    assert method == "loky"
    assert shape == (4, 16, 2)


def test_loader_workers_outlive_a_sigterm_to_the_process_group(make_cfg):
    # timeout, scancel and `kill -- -PGID` signal the loader workers too; the trainer handles SIGTERM (last.ckpt,
    # status "interrupted", exit 143), and needs its workers for that, or the run ends as a worker "failure"
    dm = build_datamodule(make_cfg("data.input_size=64", "data.num_workers=1", "data.batch_size=4"))
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    next(it)
    [worker] = it._workers
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(2)
    assert worker.is_alive()
    assert next(it)["image"].shape[0] == 4
    it._shutdown_workers()
    assert not worker.is_alive()


def test_a_dropped_training_loader_ends_its_persistent_worker_at_once(make_cfg):
    import gc
    import weakref

    dm = build_datamodule(make_cfg("data.input_size=32", "data.batch_size=2", "data.num_workers=1",
                                   "data.persistent_workers=true"))
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)
    [worker] = it._workers
    freed = weakref.ref(loader)
    gc.disable()  # only reference counting may free it: a cycle would leave the worker waiting for a collection
    try:
        del loader, it
        assert freed() is None
    finally:
        gc.enable()
    worker.join(60)  # the iterator's own shutdown has told it to end
    assert worker.exitcode == 0


def test_closing_loader_ends_persistent_workers_and_a_later_pass_starts_new_ones(make_cfg):
    from posereg.data.workers import closing_loader

    dm = build_datamodule(make_cfg("data.input_size=32", "data.batch_size=2", "data.num_workers=1",
                                   "data.persistent_workers=true"))
    dm.setup("fit")
    loader = dm.train_dataloader()
    with closing_loader(loader):
        it = iter(loader)
        first = next(it)
        [worker] = it._workers
    assert loader._iterator is None and worker.exitcode == 0  # joined by the shutdown
    with closing_loader(loader):
        again = next(iter(loader))  # the next epoch, with a new worker
        [other] = loader._iterator._workers
    assert other.pid != worker.pid and other.exitcode == 0
    assert again["image"].shape == first["image"].shape == (2, 3, 32, 32)


def _alive(pid: int, started: int) -> bool:
    """Whether the process `pid` that started at `started` (clock ticks) still runs (a zombie has ended)."""
    from helpers.leave_loader import start_time

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return start_time(pid) == started and stat[stat.rindex(")") + 2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _leave_loader(mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "helpers.leave_loader", mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.skipif(sys.platform != "linux", reason="tells live processes by /proc/<pid>/stat")
@pytest.mark.timeout(120)
def test_a_script_that_leaves_a_persistent_loader_alive_exits(tmp_path):
    # at exit multiprocessing sends SIGTERM to daemonic children, then joins them: a worker that ignored it
    # (see the test above) kept the script waiting forever
    proc = _leave_loader("exit")
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    workers = json.loads(out.splitlines()[0])["workers"]
    assert len(workers) == 1
    assert not [pid for pid, started in workers if _alive(pid, started)]


@pytest.mark.skipif(sys.platform != "linux", reason="tells live processes by /proc/<pid>/stat")
@pytest.mark.timeout(120)
def test_a_parent_killed_with_sigkill_leaves_no_worker_behind():
    proc = _leave_loader("wait")
    try:
        line = proc.stdout.readline()
        workers = json.loads(line)["workers"]
        assert [_alive(pid, started) for pid, started in workers] == [True]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
        deadline = time.monotonic() + 60
        while any(_alive(pid, started) for pid, started in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert not [pid for pid, started in workers if _alive(pid, started)]
