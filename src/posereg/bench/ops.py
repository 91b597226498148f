"""Benchmarks of the pose ops: integral op speed/memory vs references, and the quantization table.

`run_integral_bench` times forward+backward of `posereg.ops.soft_argmax` beside a naive direct
formulation (softmax, then full-size meshgrid-weighted sums: the Integral paper's eq. 4) and beside
kornia's `spatial_soft_argmax2d` when kornia is importable. `run_quantization_bench` prints SSP-Net
Table 4 beside the measured argmax / soft-argmax decoding errors.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from posereg.ops.integral import soft_argmax
from posereg.ops.quantization import quantization_table
from posereg.ops.ramps import ramp_values
from posereg.report.paper import lookup

# SSP-Net Table 4: GT s^3 heat maps decoded by argmax, and the soft-argmax network's MPJPE (mm), by map size s
PAPER_TABLE4 = "ref:ssp_net/table4_quantization_mm"

_console = Console(highlight=False)


def naive_soft_argmax(maps: torch.Tensor) -> torch.Tensor:
    """Reference soft-argmax (center ramp): softmax, then sum of prob times a full-size coordinate grid."""
    spatial = maps.shape[2:]
    prob = torch.softmax(maps.flatten(2), dim=-1).view(maps.shape)
    axes = [ramp_values(n, "center", device=maps.device, dtype=prob.dtype) for n in spatial]
    grids = torch.meshgrid(*axes, indexing="ij")
    dims = tuple(range(2, maps.dim()))
    return torch.stack([(prob * g).sum(dim=dims) for g in grids[::-1]], dim=-1)


def _kornia_soft_argmax() -> Callable[[torch.Tensor], torch.Tensor] | None:
    try:
        from kornia.geometry.subpix import spatial_soft_argmax2d
    except ImportError:
        return None
    # kornia returns [-1, 1] coordinates (x, y); map them to unit coordinates for the accuracy check
    return lambda m: (spatial_soft_argmax2d(m, normalized_coordinates=True) + 1) / 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _rss_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak resident-memory growth during fn() on Linux (VmHWM reset through clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    base = _status_bytes("VmRSS")
    fn()
    return _status_bytes("VmHWM") - base


def _step_fn(impl: Callable[[torch.Tensor], torch.Tensor], maps: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        x = maps.detach().requires_grad_(True)
        impl(x).sum().backward()

    return step


def _impl_by_name(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    impls = {"posereg": soft_argmax, "naive": naive_soft_argmax}
    return impls[name] if name in impls else _kornia_soft_argmax()


def memory_child(impl_name: str, shape: tuple[int, ...]) -> None:
    """Subprocess entry: print the peak RSS growth (bytes) of one CPU forward+backward step."""
    torch.set_num_threads(1)
    maps = torch.randn(shape) * 3
    step = _step_fn(_impl_by_name(impl_name), maps)
    step()  # warm-up: lazy initialisation is not the op's memory
    print(_rss_peak_bytes(step))


def _cpu_peak_bytes(impl_name: str, shape: tuple[int, ...]) -> int | None:
    """Peak CPU bytes of one step, measured in a fresh process (None off Linux or on failure).

    glibc keeps freed blocks below its (adaptive) mmap threshold resident, so in-process RSS misses
    medium-size buffers; the child fixes the threshold at 64 KiB so every tensor buffer is mapped and
    unmapped and the peak RSS counts it.
    """
    if not sys.platform.startswith("linux"):
        return None
    code = f"from posereg.bench.ops import memory_child; memory_child({impl_name!r}, {tuple(shape)!r})"
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].lstrip("-").isdigit():
        return None
    return int(lines[-1])


def _peak_mb(impl_name: str, maps: torch.Tensor) -> float | None:
    """Peak extra memory (MiB) of one step: CUDA allocator peak, else a fresh CPU process's peak RSS."""
    device = maps.device
    if device.type == "cuda":
        step = _step_fn(_impl_by_name(impl_name), maps)
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    peak = _cpu_peak_bytes(impl_name, tuple(maps.shape))
    return None if peak is None else peak / 2**20


def _measure(impl_name: str, maps: torch.Tensor, repeats: int) -> dict[str, float | None]:
    """Median forward+backward seconds and peak extra memory of one implementation on maps."""
    device = maps.device
    step = _step_fn(_impl_by_name(impl_name), maps)
    step()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    # ratios use the best of n: on a shared machine the minimum is the least disturbed estimate
    return {"seconds": min(times), "median_seconds": statistics.median(times), "peak_mb": _peak_mb(impl_name, maps)}


def run_integral_bench(
    quick: bool = False, device: str | None = None, repeats: int | None = None, batch_3d: int | None = None
) -> list[dict[str, Any]]:
    """Forward+backward time and peak memory of the 2D and 3D integral ops beside references.

    Paper sizes: B=32, J=17, 64x64 and 64x64x64 (`batch_3d` lowers the 3D batch on small machines).
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    shapes = {"2d": (8 if quick else 32, 17, 64, 64), "3d": (batch_3d or (2 if quick else 32), 17, 64, 64, 64)}
    case_repeats = {"2d": repeats or (10 if quick else 20), "3d": repeats or (2 if quick else 3)}
    names = ["posereg", "naive"] + (["kornia"] if _kornia_soft_argmax() is not None else [])
    results: list[dict[str, Any]] = []
    gen = torch.Generator(device="cpu").manual_seed(0)
    for case, shape in shapes.items():
        maps = (torch.randn(shape, generator=gen) * 3).to(dev)
        ref = soft_argmax(maps)
        rows = {}
        for name in names:
            if name == "kornia" and case != "2d":
                continue
            row: dict[str, Any] = {"case": case, "shape": "x".join(map(str, shape)), "impl": name, "device": str(dev)}
            row.update(_measure(name, maps, case_repeats[case]))
            row["max_abs_diff"] = float((_impl_by_name(name)(maps) - ref).abs().max())
            rows[name] = row
        naive = rows["naive"]
        for row in rows.values():
            row["time_ratio_vs_naive"] = row["seconds"] / naive["seconds"]
            has_mem = row["peak_mb"] is not None and naive["peak_mb"]
            row["mem_ratio_vs_naive"] = row["peak_mb"] / naive["peak_mb"] if has_mem else None
        results.extend(rows.values())
        del maps, ref
    if "kornia" not in names:
        results.append({"case": "2d", "impl": "kornia", "note": "kornia not installed: no comparison"})
    _print_integral(results)
    return results


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _print_integral(results: list[dict[str, Any]]) -> None:
    table = Table(title="integral op: forward+backward, best of n (ratios vs the naive direct formulation)")
    for col in ("case", "shape", "impl", "ms", "median ms", "peak MB", "time ratio", "mem ratio", "max |diff|"):
        table.add_column(col, justify="right" if col not in ("case", "impl", "shape") else "left")
    notes = [r["note"] for r in results if "note" in r]
    for r in results:
        if "note" in r:
            continue
        table.add_row(
            r["case"],
            r["shape"],
            r["impl"],
            f"{1000 * r['seconds']:.1f}",
            f"{1000 * r['median_seconds']:.1f}",
            _fmt(r["peak_mb"], ".1f"),
            f"{r['time_ratio_vs_naive']:.2f}",
            _fmt(r["mem_ratio_vs_naive"], ".2f"),
            f"{r['max_abs_diff']:.1e}",
        )
    _console.print(table)
    for note in notes:
        _console.print(note)


def synth_poses_mm(n: int, seed: int = 0) -> torch.Tensor | None:
    """n root-relative SynthPose 3D poses (n,17,3) in mm, or None when SynthPose is unavailable."""
    try:
        from posereg.data.synth import SynthPose
        from posereg.skeletons import get_joint_set
    except ImportError:
        return None
    ds = SynthPose(split="test", joint_set="h36m17", input_size=32, seed=seed, variant="synth3d")
    root = get_joint_set("h36m17").root
    poses = torch.stack([ds[i]["joints_3d"] for i in range(n)])
    return poses - poses[:, root : root + 1]


def run_quantization_bench(
    n: int = 500,
    seed: int = 0,
    quick: bool = False,
    sizes: tuple[int, ...] = (4, 8, 16, 32),
    cube_mm: float = 2000.0,
    sigma_cells: float = 0.5,
) -> list[dict[str, Any]]:
    """Quantization table (SSP-Net Table 4) on SynthPose 3D poses, or uniform points if SynthPose is absent."""
    n = min(n, 100) if quick else n
    poses = synth_poses_mm(n, seed)
    if poses is not None:
        source = f"SynthPose synth3d test split, {n} poses x 17 joints, root-relative"
    else:
        gen = torch.Generator().manual_seed(seed)
        poses = (torch.rand(n, 17, 3, generator=gen) - 0.5) * cube_mm
        source = f"posereg.data.synth not importable: {n}x17 uniform random points in the {cube_mm:.0f} mm cube"
    rows = quantization_table(poses, sizes=sizes, cube_mm=cube_mm, sigma_cells=sigma_cells)
    paper = lookup(PAPER_TABLE4)
    for r in rows:
        r["source"] = source
        r["paper_argmax_mm"] = paper["argmax_gt_volumetric"].get(r["size"])
        r["paper_soft_argmax_net_mm"] = paper["soft_argmax_regression"].get(r["size"])
    _print_quantization(rows, source, cube_mm)
    return rows


def _print_quantization(rows: list[dict[str, Any]], source: str, cube_mm: float) -> None:
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    table = Table(title=f"quantization error, {cube_mm:.0f} mm cube (mm) — {source}")
    cols = ("s", "cell", "analytic", "argmax", "argmax paper", "soft Gauss", "soft splat", "net paper", "out")
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["size"]),
            fmt(r["cell_mm"]),
            fmt(r["analytic_mm"]),
            fmt(r["argmax_mm"]),
            fmt(r["paper_argmax_mm"]),
            f"{r['soft_argmax_mm']:.2f}",
            f"{r['soft_argmax_splat_mm']:.2f}",
            fmt(r["paper_soft_argmax_net_mm"]),
            str(r["n_outside"]),
        )
    _console.print(table)
    _console.print(
        "analytic: 0.4803 x cell (mean distance to the voxel centre); argmax: ours and SSP-Net Table 4; "
        f"soft Gauss: soft-argmax of a Gaussian target, sigma = {rows[0]['sigma_cells']} cell, biased where "
        "the Gaussian is cut by the cube faces; soft splat: of a trilinear target, exact inside the hull "
        "of the cell centres; net paper: SSP-Net's soft-argmax network MPJPE (no quantization floor), "
        "not a decoding error."
    )
