"""posereg-bench: speed and memory benchmarks, each measured side by side in one process."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posereg.console import console
from posereg.paths import BENCH_DIR

# name -> (module, function, what it measures)
BENCHES: dict[str, tuple[str, str, str]] = {
    "quantization": ("posereg.bench.ops", "run_quantization_bench", "argmax vs soft-argmax quantization (SSP Tab. 4)"),
    "ops": ("posereg.bench.ops", "run_integral_bench", "integral op vs naive reference (and kornia)"),
    "data": ("posereg.bench.data", "run_data_bench", "SynthPose samples/s and loader overhead"),
    "sspnet": ("posereg.bench.sspnet", "run_sspnet_bench", "SSP-Net throughput per cut"),
    "sweep": ("posereg.bench.sweep", "run_sweep_bench", "grid wall time: sequential vs joblib"),
    "complexity": ("posereg.bench.complexity", "run_complexity_bench",
                   "params and GMACs of every network (method x backbone, hourglass, DeepSkeleton)"),
    "skeleton_map": ("posereg.bench.skeleton_map", "run_skeleton_map_bench", "skeleton-map render vs a train step"),
    "throughput": ("posereg.bench.throughput", "run_throughput_bench",
                   "model-only / loader-only / end-to-end steps/s of a preset (default quickstart)"),
    "lightning": ("posereg.bench.lightning_overhead", "run_lightning_bench",
                  "posereg's Lightning loop vs a plain PyTorch loop, and each callback's cost"),
}
DEFAULT_ALL = ("quantization", "ops", "data", "sspnet", "sweep")


def _load(name: str) -> Callable[..., Any]:
    module, func, _ = BENCHES[name]
    return getattr(importlib.import_module(module), func)


def run(names: list[str], out_dir: Path, quick: bool) -> dict[str, Any]:
    """Run the named benchmarks and write <out>/<name>.json for each (default docs/benchmarks/)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in names:
        console.rule(f"[bold]bench: {name}[/bold] — {BENCHES[name][2]}")
        start = time.perf_counter()
        fn = _load(name)
        accepts_quick = "quick" in inspect.signature(fn).parameters
        result = fn(quick=quick) if accepts_quick else fn()
        results[name] = result
        payload = {"bench": name, "seconds": round(time.perf_counter() - start, 1), "result": result}
        (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-bench)."""
    parser = argparse.ArgumentParser(prog="posereg-bench", description=__doc__)
    parser.add_argument("names", nargs="*", default=["all"], help=f"all or any of: {', '.join(BENCHES)}")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="folder for the JSON results")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    args = parser.parse_args(argv)
    names = list(DEFAULT_ALL) if args.names in (["all"], []) else args.names
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    run(names, args.out, args.quick)


if __name__ == "__main__":
    main()
