"""What a grid costs before it runs: training steps, images, compute, checkpoint disk, and time.

Compute is counted, not guessed: each cell's network is built from its composed config and its MACs per
image are measured by `posereg.nets.complexity` (no weights loaded or downloaded, no data read); training
costs about three forward passes per image (forward, and a backward twice as expensive), 2 FLOPs per MAC.
Time is only estimated from what this grid's finished cells measured (seconds per training image-GMAC,
whatever machine ran them), never from a nominal device speed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from posereg.errors import ConfigError, DataError
from posereg.grid.plan import SweepPlan, compose_cell_config
from posereg.report.collect import load_run

TRAIN_FLOPS_PER_MAC = 6  # 2 FLOPs per MAC, forward + backward (~2x forward)
OPTIMIZER_MOMENTS = {"Adam": 2, "AdamW": 2, "RMSprop": 1}


@dataclass(frozen=True)
class CellCost:
    """One cell: its status, budget (steps, images), network size and, once finished, its measured time."""

    name: str
    status: str
    steps: int | None
    epochs: int
    batch: int
    params: int
    macs: int
    checkpoint_bytes: int
    seconds: float | None = None
    note: str = ""

    @property
    def images(self) -> int | None:
        """Training images seen (steps x batch)."""
        return None if self.steps is None else self.steps * self.batch

    @property
    def train_flops(self) -> float | None:
        """Training FLOPs: 6 x MACs per image x images."""
        return None if self.images is None else TRAIN_FLOPS_PER_MAC * self.macs * self.images


def epoch_images(cfg: DictConfig) -> tuple[int | None, str]:
    """Training images per epoch: `data.epoch_length` (else the training set's size, read only when `data.root`
    is there) times `budget_scale`; (None, why) when it cannot be known."""
    scale = int(cfg.get("budget_scale", 1))
    if cfg.data.get("epoch_length"):
        return int(cfg.data.epoch_length) * scale, ""
    from posereg.data import build_datamodule

    try:
        return sum(len(d) for d in build_datamodule(cfg).datasets("train")) * scale, ""
    except (ConfigError, DataError, OSError) as err:
        return None, f"epoch = the training set, unreadable here ({str(err).splitlines()[0][:80]})"


def train_steps(cfg: DictConfig) -> tuple[int | None, str]:
    """Optimizer steps of a run: epochs x batches per epoch (limit_train_batches applied), capped by max_steps."""
    trainer = cfg.trainer
    max_steps = int(trainer.get("max_steps") or -1)
    images, why = epoch_images(cfg)
    if images is None:
        return (max_steps, "") if max_steps > 0 else (None, why)
    per_epoch = max(1, images // int(cfg.data.batch_size))
    limit = trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        per_epoch = min(per_epoch, limit)
    elif isinstance(limit, float):
        per_epoch = max(1, int(per_epoch * limit))
    steps = per_epoch * int(trainer.max_epochs)
    return (min(steps, max_steps) if max_steps > 0 else steps), ""


def checkpoint_bytes(cfg: DictConfig, params: int) -> int:
    """Disk of a run's two checkpoints (best + last) in float32 with the optimizer's moments."""
    optimizer = str(cfg.method.optimizer.get("_target_", "")).rsplit(".", 1)[-1]
    moments = OPTIMIZER_MOMENTS.get(optimizer, 1 if float(cfg.method.optimizer.get("momentum", 0) or 0) else 0)
    return 2 * 4 * params * (1 + moments)


def cell_cost(plan: SweepPlan, cell: dict[str, str]) -> CellCost:
    """Compose one cell, build its network, and measure what training it costs."""
    from posereg.data.datamodule import data_info
    from posereg.methods import build_net
    from posereg.methods.initial_weights import without_initial_weights
    from posereg.nets.complexity import model_complexity

    cfg = compose_cell_config(plan, cell)
    if isinstance(cfg, str):
        return CellCost(",".join(f"{k}={v}" for k, v in cell.items()), "failed", None, 0, 0, 0, 0, 0, note=cfg)
    run_dir = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
    record = load_run(run_dir) if run_dir.exists() else None
    net = build_net(without_initial_weights(cfg), data_info(cfg))  # counted, not trained: nothing downloaded
    complexity = model_complexity(net, int(cfg.data.input_size))
    steps, why = train_steps(cfg)
    done = record is not None and record.status == "done"
    return CellCost(run_dir.name, record.status if record else "pending", steps, int(cfg.trainer.max_epochs),
                    int(cfg.data.batch_size),
                    complexity.params, complexity.macs, checkpoint_bytes(cfg, complexity.params),
                    record.duration_s if done else None, why)


def seconds_per_gmac_image(cells: list[CellCost]) -> float | None:
    """Median seconds per training image-GMAC over the finished cells (None when none finished)."""
    rates = [c.seconds / (c.images * c.macs / 1e9) for c in cells
             if c.seconds and c.images and c.macs]
    return statistics.median(rates) if rates else None


def estimate(plan: SweepPlan) -> list[CellCost]:
    """Every cell's cost, in the grid's order."""
    return [cell_cost(plan, cell) for cell in plan.cells()]


def _fmt_seconds(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


def _fmt_flops(f: float) -> str:
    return f"{f / 1e15:.3g} PFLOP" if f >= 1e14 else f"{f / 1e12:.3g} TFLOP"


def cost_table(plan: SweepPlan, cells: list[CellCost]) -> str:
    """The estimate as text: one line per cell, totals, and the time of the cells still to run."""
    rate = seconds_per_gmac_image(cells)
    width = min(90, max([4, *(len(c.name) for c in cells)]))
    lines = [f"{plan.template.name}: {len(cells)} cells -> {plan.grid_dir}",
             f"{'cell':{width}s} {'status':11s} {'epochs':>6s} {'steps':>8s} {'images':>10s} {'GMACs/img':>9s} "
             f"{'train':>12s} {'ckpt disk':>9s} {'time':>8s}"]
    todo_s, unknown = 0.0, 0
    notes: list[str] = []
    for c in cells:
        time_s = c.seconds if c.seconds else (rate * c.images * c.macs / 1e9 if rate and c.images else None)
        if c.status != "done":
            if time_s is None:
                unknown += 1
            else:
                todo_s += time_s
        if c.note and c.note not in notes:
            notes.append(c.note)
        mark = f" [{notes.index(c.note) + 1}]" if c.note else ""
        lines.append(
            f"{c.name[:width]:{width}s} {c.status:11s} {c.epochs:>6} {c.steps if c.steps is not None else '?':>8} "
            f"{c.images if c.images is not None else '?':>10} {c.macs / 1e9:9.3g} "
            f"{_fmt_flops(c.train_flops) if c.train_flops else '?':>12s} {c.checkpoint_bytes / 1e9:8.2f}G "
            f"{(_fmt_seconds(time_s) + ('' if c.seconds else '*')) if time_s else '?':>8s}{mark}")
    lines += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    flops = [c.train_flops for c in cells if c.train_flops]
    lines.append(f"total: {_fmt_flops(sum(flops)) if flops else '?'} of training compute"
                 + (f" ({len(cells) - len(flops)} cells unknown)" if len(flops) < len(cells) else "")
                 + f", {sum(c.checkpoint_bytes for c in cells) / 1e9:.2f} GB of checkpoints")
    done = sum(c.status == "done" for c in cells)
    if rate is None:
        lines.append(f"time: no finished cell to measure from yet ({done}/{len(cells)} done); run one cell "
                     "(e.g. seed=0) and ask again")
    else:
        lines.append(f"time still to run: {_fmt_seconds(todo_s)} for {len(cells) - done - unknown} cells "
                     f"(* = estimated at {rate:.3g} s per training image-GMAC, the median of {done} finished "
                     "cells on the machine that ran them)"
                     + (f"; {unknown} cells unknown" if unknown else ""))
    return "\n".join(lines)


def summary(cells: list[CellCost]) -> dict[str, Any]:
    """Totals as numbers (for tests and scripts)."""
    flops = [c.train_flops for c in cells if c.train_flops]
    return {"cells": len(cells), "done": sum(c.status == "done" for c in cells),
            "train_flops": sum(flops) if flops else math.nan,
            "checkpoint_bytes": sum(c.checkpoint_bytes for c in cells),
            "seconds_per_gmac_image": seconds_per_gmac_image(cells)}
