"""Loader workers run OpenCV single-threaded, never deadlock on it, and keep Lightning's per-worker seeding."""

from __future__ import annotations

from functools import partial

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset

from posereg.data.datamodule import build_datamodule
from posereg.data.workers import init_loader_worker, loader_worker_init


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
    import os
    import signal

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
