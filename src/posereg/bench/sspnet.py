"""SSP-Net speed per cut: frames/s and latency of every early exit, as ratios to the full network.

The paper reports 120 FPS for the full network and > 200 FPS cut early (GTX 1080 Ti), a ratio of
about 1.67; this benchmark measures the same ratio for every cut on the local device.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from posereg.devices import pick_device
from posereg.errors import ConfigError
from posereg.nets.contract import PoseNet
from posereg.nets.sspnet import SSPNet
from posereg.paths import BENCH_DIR

PAPER = {"full_fps": 120.0, "early_fps": 200.0, "device": "GTX 1080 Ti", "ratio": 200.0 / 120.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def time_forward(fn, device: torch.device, repeats: int, warmup: int, clock: str = "wall") -> list[float]:
    """Seconds of `fn()` for `repeats` runs after `warmup` runs (device-synchronized).

    `clock="process"` counts the CPU time of this process: on a shared CPU with one intra-op thread it
    measures the work of the network rather than the time spent waiting for a core.
    """
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        _sync(device)
        times.append(now() - t0)
    return times


def graphed(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """`fn` on the input buffer `x`, captured once as a CUDA graph: a call replays it (one launch for all kernels)
    and returns the captured outputs, overwritten by the replay.

    The result ignores its argument: a replay reads `x` (the benchmark's input never changes).
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # capture needs its warm-up (cuDNN plans, allocations) on a side stream
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(x)

    def replay(inp: torch.Tensor) -> Any:
        graph.replay()
        return out

    return replay


def measure_cuts(
    net: PoseNet,
    input_size: int,
    device: torch.device,
    batch_size: int = 1,
    repeats: int = 3,
    warmup: int = 1,
    cuts: list[str] | None = None,
    amp: bool = False,
    channels_last: bool = False,
    compile_model: bool = False,
    clock: str = "wall",
    cuda_graphs: bool = False,
) -> dict[str, float]:
    """Median latency in seconds of forward(x, cut=i) for each output name (default: all outputs).

    `cuda_graphs` replays each cut as one captured CUDA graph: what is left when launch overhead is taken away.
    """
    if cuda_graphs and device.type != "cuda":
        raise ConfigError("bench cuda_graphs: CUDA graphs need device=cuda")
    names = cuts or net.output_names
    x = torch.randn(batch_size, 3, input_size, input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {n: [] for n in names}
    # autocast's cache of cast weights lives only inside one autocast block: a graph must cast them itself
    autocast = torch.autocast(device.type, dtype=torch.float16, cache_enabled=not cuda_graphs) if amp \
        else nullcontext()
    with torch.inference_mode(), autocast:
        fns = {}
        for name in names:
            fn = lambda inp, c=net.output_names.index(name): net(inp, cut=c)  # noqa: E731
            fn = torch.compile(fn) if compile_model else fn
            fns[name] = graphed(fn, x) if cuda_graphs else fn
        for name in names:
            time_forward(lambda f=fns[name]: f(x), device, 0, warmup)
        # Round-robin over the cuts so that load from other processes spreads over all of them.
        for _ in range(repeats):
            for name in names:
                times[name] += time_forward(lambda f=fns[name]: f(x), device, 1, 0, clock)
    return {n: statistics.median(t) for n, t in times.items()}


def select_cut_for_fps(fps_by_name: dict[str, float], target_fps: float, names: list[str]) -> str:
    """The latest output (in execution order) that runs at >= target_fps; ConfigError if none does."""
    fast = [n for n in names if fps_by_name.get(n, 0.0) >= target_fps]
    if not fast:
        best = max(fps_by_name.values(), default=0.0)
        raise ConfigError(
            f"cut=auto:{target_fps:g}: no output reaches {target_fps:g} frames/s here (fastest {best:.1f}); "
            "lower the target or pick a cut by name"
        )
    return fast[-1]


def pick_cut_for_fps(net: PoseNet, target_fps: float, input_size: int, device: torch.device | str = "cpu",
                     repeats: int = 3) -> str:
    """The latest output of `net` that runs at >= target_fps at batch 1 on `device`, by measuring every cut."""
    device = torch.device(device)
    was_training = net.training
    net.eval()
    latency = measure_cuts(net, input_size, device, batch_size=1, repeats=repeats, warmup=1)
    net.train(was_training)
    return select_cut_for_fps({n: 1.0 / t for n, t in latency.items()}, target_fps, net.output_names)


def _markdown(report: dict) -> str:
    """Markdown table of a benchmark report."""
    cfg = report["config"]
    batches = cfg["batch_sizes"]
    head = ["cut", "maps"] + [h for b in batches for h in (f"ms b{b}", f"FPS b{b}", f"speed-up b{b}")]
    lines = [
        f"# SSP-Net speed per cut ({report['device']}, input {cfg['input_size']}, growth {cfg['growth']}, "
        f"K={cfg['num_pyramids']}, L={cfg['num_levels']})",
        "",
        f"Median of {cfg['repeats']} runs after {cfg['warmup']} warm-up ({cfg['clock']} clock); "
        f"speed-up = full-network latency / cut latency. Paper: {PAPER['full_fps']:.0f} FPS full, "
        f">{PAPER['early_fps']:.0f} FPS early cut on a "
        f"{PAPER['device']} (ratio {PAPER['ratio']:.2f}).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in report["cuts"]:
        cells = [row["cut"], f"{row['map_size']}²"]
        for b in batches:
            r = row["batch"][str(b)]
            cells += [f"{1000 * r['latency_s']:.1f}", f"{r['fps']:.1f}", f"{r['speedup']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_sspnet_bench(
    device: str = "cpu",
    input_size: int = 256,
    growth: int = 128,
    num_pyramids: int = 8,
    num_levels: int = 3,
    num_joints: int = 17,
    batch_sizes: tuple[int, ...] | None = None,
    repeats: int | None = None,
    warmup: int | None = None,
    channels_last: bool | None = None,
    amp: bool | None = None,
    compile_model: bool = False,
    threads: int | None = None,
    clock: str | None = None,
    out_dir: str | Path | None = BENCH_DIR,
    tag: str | None = None,
    quick: bool = False,
    cuts: list[str] | None = None,
    cuda_graphs: bool = False,
) -> dict:
    """Latency / frames/s of every cut (or of `cuts` and the full network) at each batch size, with speed-ups
    vs the full network.

    CPU defaults are short (batch 1, 5 repeats, one thread, process CPU time so that other jobs on a
    shared machine do not distort the ratios); CUDA defaults to batches 1 and 32, channels-last, fp16
    autocast and wall-clock time; `cuda_graphs` replays each cut as a captured CUDA graph. `quick` swaps in
    the small CPU variant (128 px, growth 32, K=4). Writes `<out_dir>/sspnet_<tag>.json` and `.md` unless
    out_dir is None.
    """
    if quick:
        input_size, growth, num_pyramids = 128, 32, 4
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    batch_sizes = tuple(batch_sizes or ((1, 32) if cuda else (1,)))
    repeats = repeats or (20 if cuda else 5)
    warmup = warmup if warmup is not None else (5 if cuda else 1)
    channels_last = cuda if channels_last is None else channels_last
    amp = cuda if amp is None else amp
    clock = clock or ("wall" if cuda else "process")
    if clock not in CLOCKS:
        raise ConfigError(f"bench clock={clock!r} unknown: use one of {', '.join(CLOCKS)}")
    threads = threads or (None if cuda else 1)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = SSPNet(num_joints, growth=growth, num_pyramids=num_pyramids, num_levels=num_levels,
                 input_size=input_size).to(dev).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    full_name = net.output_names[-1]
    unknown = sorted(set(cuts or ()) - set(net.output_names))
    if unknown:
        raise ConfigError(f"bench cuts: {', '.join(unknown)} not among the outputs {', '.join(net.output_names)}")
    names = [n for n in net.output_names if cuts is None or n in cuts or n == full_name]
    rows = {n: {"cut": n, "index": net.output_names.index(n),
                "map_size": input_size // 8 // 2 ** int(n.split("l")[1]), "batch": {}} for n in names}
    for b in batch_sizes:
        lat = measure_cuts(net, input_size, dev, b, repeats, warmup, names, amp=amp, channels_last=channels_last,
                           compile_model=compile_model, clock=clock, cuda_graphs=cuda_graphs)
        full = lat[full_name]
        for n, t in lat.items():
            rows[n]["batch"][str(b)] = {"latency_s": t, "fps": b / t, "speedup": full / t}
    report = {
        "device": torch.cuda.get_device_name(dev) if cuda else f"cpu ({platform.processor() or 'unknown'}, "
        f"{torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "config": {"input_size": input_size, "growth": growth, "num_pyramids": num_pyramids,
                   "num_levels": num_levels, "num_joints": num_joints, "batch_sizes": list(batch_sizes),
                   "repeats": repeats, "warmup": warmup, "channels_last": channels_last, "amp": amp,
                   "compile": compile_model, "cuda_graphs": cuda_graphs, "clock": clock,
                   "params_m": sum(p.numel() for p in net.parameters()) / 1e6},
        "paper": PAPER,
        "cuts": list(rows.values()),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tag = tag or f"{dev.type}_{input_size}_g{growth}_k{num_pyramids}"
        (out / f"sspnet_{tag}.json").write_text(json.dumps(report, indent=2))
        (out / f"sspnet_{tag}.md").write_text(_markdown(report))
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line: python -m posereg.bench.sspnet --device cpu --input-size 256 ..."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--growth", type=int, default=128)
    p.add_argument("--pyramids", type=int, default=8)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--batch", type=int, nargs="*", default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cuda-graphs", action="store_true", help="replay each cut as a captured CUDA graph")
    p.add_argument("--cuts", nargs="*", default=None, help="these cuts and the full network (default: every cut)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default=None)
    p.add_argument("--out-dir", default=str(BENCH_DIR))
    p.add_argument("--tag", default=None)
    a = p.parse_args(argv)
    report = run_sspnet_bench(a.device, a.input_size, a.growth, a.pyramids, a.levels,
                              batch_sizes=tuple(a.batch) if a.batch else None, repeats=a.repeats,
                              compile_model=a.compile, threads=a.threads, clock=a.clock, out_dir=a.out_dir,
                              tag=a.tag, cuts=a.cuts, cuda_graphs=a.cuda_graphs)
    print(_markdown(report))


if __name__ == "__main__":
    main()
