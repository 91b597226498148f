"""Skeleton-map rendering cost beside one training step, measured side by side in one process.

Targets are rendered on the fly for every training batch, so the renderer should cost at most a few
per cent of a step. This benchmark times `render_skeleton_maps` for a batch of MPII-16 poses (15
bones, 56² maps of a 224² crop, anti-aliased, depth order) and one forward+backward+Adam step of a
randomly initialised timm ResNet-50 at 224² on the same device with the same threads, and reports the
ratio render/step (goal: <= 5 %).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from posereg.nets.backbone import create_timm
from posereg.ops.skeleton_map import default_bone_colors, render_skeleton_maps, skeleton_bones
from posereg.skeletons import get_joint_set

GOAL_RATIO = 0.05
_console = Console(highlight=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _times(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Wall seconds of `repeats` device-synchronized calls of fn after `warmup` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def random_poses(batch: int, input_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Body-sized random MPII-16 poses: joints (B,16,2) in crop pixels, depth (B,16) mm, weights (B,16,3)."""
    gen = torch.Generator().manual_seed(seed)
    centre = input_size * (0.35 + 0.3 * torch.rand(batch, 1, 2, generator=gen))
    joints = (centre + 0.25 * input_size * torch.randn(batch, 16, 2, generator=gen)).clamp(0, input_size - 1)
    depth = 4000.0 + 250.0 * torch.randn(batch, 16, generator=gen)
    return joints, depth, torch.ones(batch, 16, 3)


def _train_step_fn(model_name: str, batch: int, input_size: int, device: torch.device) -> Callable[[], None]:
    """One forward+backward+Adam step of a random-init timm classifier regressing 48 outputs."""
    model = create_timm(model_name, num_classes=48).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, input_size, input_size, generator=gen).to(device)
    target = torch.randn(batch, 48, generator=gen).to(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), target).backward()
        opt.step()

    return step


def run_skeleton_map_bench(
    quick: bool = False,
    device: str = "cpu",
    batch_size: int = 32,
    size: int = 56,
    input_size: int = 224,
    model: str = "resnet50",
) -> dict[str, Any]:
    """Best-of-n milliseconds of rendering a batch and of one training step, and their ratio."""
    dev = torch.device(device)
    joints, depth, weights = (t.to(dev) for t in random_poses(batch_size, input_size))
    bones = skeleton_bones("mpii16")
    colors = default_bone_colors(len(bones), device=dev)

    def render() -> None:
        render_skeleton_maps(joints, depth, weights, bones, colors, size=size, input_size=input_size)

    # render repeats are cheap; a CPU ResNet-50 step takes seconds, so it gets few repeats
    render_s = _times(render, dev, repeats=10 if quick else 30, warmup=2)
    step_s = _times(_train_step_fn(model, batch_size, input_size, dev), dev, repeats=1 if quick else 3, warmup=1)
    maps = render_skeleton_maps(joints, depth, weights, bones, colors, size=size, input_size=input_size)
    result: dict[str, Any] = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "batch": batch_size,
        "map_size": size,
        "input_size": input_size,
        "bones": len(bones),
        "joint_set": get_joint_set("mpii16").name,
        "model": model,
        "render_ms": 1000 * min(render_s),
        "render_median_ms": 1000 * statistics.median(render_s),
        "step_ms": 1000 * min(step_s),
        "step_median_ms": 1000 * statistics.median(step_s),
        "step_repeats": len(step_s),
        "fg_pixel_fraction": float((maps.fg_bone >= 0).float().mean()),
        "bg_pixel_fraction": float((maps.bg_bone >= 0).float().mean()),
        "goal_ratio": GOAL_RATIO,
    }
    result["ratio"] = result["render_ms"] / result["step_ms"]
    result["meets_goal"] = result["ratio"] <= GOAL_RATIO
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    table = Table(title=f"skeleton-map render vs one {r['model']} training step ({r['device']}, best of n)")
    for col in ("what", "shape", "ms", "median ms"):
        table.add_column(col, justify="left" if col in ("what", "shape") else "right")
    shape = f"{r['batch']}x{r['bones']} bones -> 2x{r['batch']}x3x{r['map_size']}x{r['map_size']}"
    table.add_row("render", shape, f"{r['render_ms']:.1f}", f"{r['render_median_ms']:.1f}")
    step_shape = f"{r['batch']}x3x{r['input_size']}x{r['input_size']}, fwd+bwd+Adam"
    table.add_row("train step", step_shape, f"{r['step_ms']:.1f}", f"{r['step_median_ms']:.1f}")
    _console.print(table)
    verdict = "meets" if r["meets_goal"] else "misses"
    _console.print(f"render/step = {100 * r['ratio']:.2f} % ({verdict} the {100 * r['goal_ratio']:.0f} % goal)")
