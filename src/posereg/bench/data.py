"""SynthPose and real-image throughput (samples/s per core), and the training-step cost of real loading.

Goals (issue 3): >= 1000 samples/s per core at 128x128 with augmentation; a ResNet-18 training step
with real loading (2 workers) within 5 % of the same step on a pre-loaded batch (ratio <= 1.05).
Real images: >= 600 samples/s per core at 256x256 on Human3.6M frames with the H36M augmentation,
measured side by side with the whole-image PIL decode (``decoder="pil"``) and reported as a ratio.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import torch
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

from posereg.console import console
from posereg.data.decode import turbojpeg
from posereg.data.records import RecordDataset
from posereg.data.synth import SynthPose
from posereg.data.transforms import augment_preset
from posereg.data.workers import closing_loader, loader_worker_init
from posereg.paths import CONF_DIR, real_slices_dir


def synth_throughput(sizes: tuple[int, ...] = (64, 128, 256), n: int = 300, variant: str = "synth2d",
                     augment: bool = True, seed: int = 0) -> list[dict[str, Any]]:
    """Samples per CPU-second of this process (one core: torch and OpenCV single-threaded) per input size."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # as in a loader worker (posereg.data.workers)
    rows = []
    try:
        for size in sizes:
            aug = augment_preset("synth") if augment else None
            ds = SynthPose("train", None, size, aug, seed=seed, variant=variant)
            for i in range(5):
                ds[i]
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(n):
                ds[i]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rows.append({"bench": "synth_samples_per_s_per_core", "variant": variant, "input_size": size,
                         "augment": augment, "samples": n, "value": round(n / cpu, 1),
                         "wall_samples_per_s": round(n / wall, 1), "goal": ">= 1000 at 128" if size == 128 else ""})
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    return rows


class _TinyPoseNet(nn.Module):
    """timm ResNet-18 features + 1x1 conv head + global average: direct 2D regression (enough for timing)."""

    def __init__(self, num_joints: int) -> None:
        super().__init__()
        import timm

        self.backbone = timm.create_model("resnet18", pretrained=False, num_classes=0, global_pool="")
        self.head = nn.Conv2d(self.backbone.num_features, num_joints * 2, 1)
        self.num_joints = num_joints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).mean(dim=(2, 3)).view(-1, self.num_joints, 2)


def loading_overhead(steps: int = 30, batch_size: int = 32, input_size: int = 128, num_workers: int = 2,
                     seed: int = 0) -> dict[str, Any]:
    """Seconds per training step with a DataLoader feeding it vs with one pre-loaded batch, and their ratio."""
    ds = SynthPose("train", None, input_size, augment_preset("synth"), seed=seed, variant="synth2d",
                   length={"train": (steps + 2) * batch_size})
    model = _TinyPoseNet(16)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step(batch: dict[str, torch.Tensor]) -> None:
        pred = model(batch["image"]) * input_size
        loss = ((pred - batch["joints_2d"]).abs() * batch["weights"][..., :2]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    # the pre-loaded batch comes from the main process, so no worker prefetches during that timing
    batch = next(iter(DataLoader(ds, batch_size=batch_size, num_workers=0)))
    step(batch)  # warm-up (allocator, threads) outside the timings
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    t_pre = (time.perf_counter() - start) / steps
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0,
                        worker_init_fn=loader_worker_init())
    with closing_loader(loader):  # its workers end here, not whenever the iterator is collected
        it = iter(loader)
        step(next(it))  # worker start-up outside the timing
        start = time.perf_counter()
        n = 0
        for b in it:
            step(b)
            n += 1
            if n == steps:
                break
        t_load = (time.perf_counter() - start) / max(n, 1)
    return {"bench": "train_step_loading_vs_preloaded", "batch_size": batch_size, "input_size": input_size,
            "num_workers": num_workers, "steps": n, "s_per_step_preloaded": round(t_pre, 4),
            "s_per_step_loading": round(t_load, 4), "value": round(t_load / t_pre, 3), "goal": "<= 1.05"}


def real_datasets(augment: Any, input_size: int = 256) -> dict[str, RecordDataset]:
    """MPII, COCO and Human3.6M training datasets over the real slices (a few records each), or {} without them."""
    from posereg.data.coco import COCODataset
    from posereg.data.h36m import H36MDataset
    from posereg.data.mpii import MPIIDataset

    root = real_slices_dir()
    if not root.is_dir():
        return {}
    kw = {"split": "train", "input_size": input_size, "augment": augment}
    return {
        "mpii": MPIIDataset(root / "mpii", ann_file="test_mpii.json", image_dir=".", **kw),
        "coco": COCODataset(root / "coco", ann_file="test_coco.json", image_dir=".", **kw),
        "h36m": H36MDataset(root / "h36m", ann_files=["test_h36m_body3d.npz"], camera_file="cameras.pkl",
                            image_dir=".", subjects=["S1", "S5", "S7", "S8"], **kw),
    }


def real_throughput(n: int = 400, input_size: int = 256, decoders: tuple[str, ...] = ("pil", "cv2", "auto"),
                    rounds: int = 8) -> list[dict[str, Any]]:
    """Samples per CPU-second (one core) on real images per decoder, side by side, and new/old ratios.

    The few records of each slice repeat; the decoders take turns in ``rounds`` blocks of the same
    augmentation draws, and each reports its best block, so that other load on the machine hits
    them alike. ``pil`` is the whole-image decode used before.
    """
    from omegaconf import OmegaConf

    # glibc serves buffers above its (dynamic) mmap threshold as fresh, page-faulting mappings until
    # a larger one is freed: the whole-image path's 3-16 MB buffers then cost twice as much. One
    # 24 MB free first puts them on the heap, so that path is timed at its best.
    np.empty(24 * 2**20, dtype=np.uint8)  # allocated and freed at once
    augment = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / "h36m.yaml").augment)
    datasets = real_datasets(augment, input_size)
    auto = "auto (turbojpeg)" if turbojpeg() is not None else "auto (cv2)"
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # as in a loader worker (posereg.data.workers)
    rows = []
    try:
        for name, ds in datasets.items():
            rate = dict.fromkeys(decoders, 0.0)
            per_round = max(1, n // rounds)
            for dec in decoders:  # warm-up: file cache, library loading
                ds.decoder = dec
                for i in range(len(ds)):
                    ds[i]
            for _ in range(rounds):
                draws = ds._draws
                for dec in decoders:
                    ds.decoder, ds._draws = dec, draws  # every decoder crops with the same augmentation draws
                    start = time.process_time()
                    for i in range(per_round):
                        ds[i % len(ds)]
                    rate[dec] = max(rate[dec], per_round / max(time.process_time() - start, 1e-9))
            label = {dec: f"{name} {auto if dec == 'auto' else dec}" for dec in decoders}
            for dec in decoders:
                rows.append({"bench": "real_samples_per_s_per_core", "variant": label[dec],
                             "dataset": name, "decoder": dec, "input_size": input_size, "augment": "h36m",
                             "records": len(ds), "samples": per_round * rounds, "value": round(rate[dec], 1),
                             "goal": ">= 600" if name == "h36m" and dec == "auto" else ""})
            for dec in decoders[1:]:
                rows.append({"bench": "real_speedup_vs_pil", "variant": label[dec],
                             "dataset": name, "decoder": dec, "input_size": input_size,
                             "value": round(rate[dec] / rate[decoders[0]], 2),
                             "goal": "~5x" if name == "h36m" and dec == "auto" else ""})
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    return rows


def run_data_bench(quick: bool = False) -> list[dict[str, Any]]:
    """All measurements, printed as a table; returns the rows."""
    rows = synth_throughput(n=100 if quick else 400)
    rows += synth_throughput(sizes=(128,), n=100 if quick else 400, variant="synth3d")
    rows += real_throughput(n=60 if quick else 400, rounds=2 if quick else 8)
    rows.append(loading_overhead(steps=4 if quick else 30, batch_size=16 if quick else 32))
    table = Table(title="Data bench (samples/s per core, ratios)")
    for col in ("bench", "variant", "input_size", "value", "goal"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["bench"], str(r.get("variant", "synth2d")), str(r["input_size"]), str(r["value"]),
                      r["goal"])
    console.print(table)
    return rows
