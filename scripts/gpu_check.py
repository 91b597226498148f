"""The measuring half of scripts/gpu_check.sh: throughput, SSP-Net FPS, eager vs compiled, fp32 vs bf16 on one GPU.

Writes gpu_check.json and gpu_check.md into --out. Sections run in order of importance and each one is skipped
(and named as skipped) when the time left before --deadline is below its estimate, so that the whole check
ends inside its budget. `--cpu-dry-run` runs every section on the CPU with tiny sizes (compiling excepted), to
check the script itself on a machine without a GPU.

Presets (the Integral paper's MPII setting, `experiment=integral_mpii method=i1`, needs MPII, so its SynthPose
variant stands in: the same ResNet-50, 256x256 crops, 2 deconvolutions, batch 128, with `data=synth2d`):
  quickstart           experiment=quickstart (ResNet-18, 64x64, batch 32, bf16)
  integral_r50_256     experiment=integral_mpii method=i1 data=synth2d
and their real-image twins, reading the bundled MPII slice (5 images, repeated to fill the epoch) with the
preset's augmentation: data=mpii data.root=<real slices>/mpii ... (POSEREG_REAL_SLICES, or ../shared beside
the checkout).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from posereg.bench.lightning_overhead import lightning_overhead
from posereg.bench.sspnet import run_sspnet_bench
from posereg.bench.throughput import Workload, compose_preset, throughput, time_model_only
from posereg.devices import amp_precision, pick_device
from posereg.paths import real_slices_dir

# ResNet-18 / ResNet-50 at their preset sizes on the GPU; the dry run swaps in tiny sizes (same code paths)
PRESETS = {
    "quickstart": ["experiment=quickstart", "trainer=gpu", "callbacks.speed.compile=false"],
    "integral_r50_256": ["experiment=integral_mpii", "method=i1", "data=synth2d", "callbacks.speed.compile=false"],
}
TINY = ["data.input_size=64", "data.batch_size=4", "backbone.name=resnet10t", "method.head.width=16"]
GPU_DATA = ["data.pin_memory=true"]
# model-only variants of the ResNet-50 256 preset: name -> (precision, overrides)
VARIANTS = {
    "fp32, eager": ("32-true", ["callbacks.speed.channels_last=false"]),
    "bf16, eager": ("bf16-mixed", ["callbacks.speed.channels_last=false"]),
    "bf16, channels_last, eager": ("bf16-mixed", []),
    "bf16, channels_last, compiled": ("bf16-mixed", ["callbacks.speed.compile=true"]),
}


def real_overrides(preset: str) -> list[str] | None:
    """Overrides that make a preset read the real MPII slice instead of SynthPose (None without the slice)."""
    root = real_slices_dir() / "mpii"
    if not (root / "test_mpii.json").is_file():
        return None
    common = [f"data.root={root}", "data.sources.mpii.ann_file=test_mpii.json", "data.sources.mpii.image_dir=.",
              "data.head_size_proxy=true"]
    if preset == "quickstart":  # its data block names the synth source: drop it with the data group swap
        return ["data=mpii", "~data.sources.synth", *common]
    return ["data=mpii", *common, "data.epoch_length=8192"]


class Check:
    """The sections, their results, and the time budget."""

    def __init__(self, deadline: float, dry_run: bool, workers: int) -> None:
        self.deadline, self.dry_run, self.workers = deadline, dry_run, workers
        self.device = "cpu" if dry_run else "cuda"
        self.steps = 2 if dry_run else 25
        self.result: dict[str, Any] = {"throughput": [], "speed_variants": [], "sspnet": {}, "lightning": {},
                                       "skipped": [], "errors": []}

    def left(self) -> float:
        return self.deadline - time.time()

    def section(self, name: str, estimate_s: float, fn: Callable[[], None]) -> None:
        """Run one section if `estimate_s` fits before the deadline; record a skip or an error otherwise."""
        if self.left() < estimate_s:
            self.result["skipped"].append(f"{name}: {self.left():.0f} s left, needs ~{estimate_s:.0f} s")
            print(f"[gpu_check] skip {name}", flush=True)
            return
        start = time.time()
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - one failing section must not lose the others' numbers
            first = (str(err).splitlines() or [""])[0]
            self.result["errors"].append(f"{name}: {type(err).__name__}: {first}")
            traceback.print_exc()
        print(f"[gpu_check] {name}: {time.time() - start:.0f} s", flush=True)

    def overrides(self, preset: str, real: bool, precision: str | None = None) -> list[str] | None:
        """The preset's overrides (None: real images asked for but no slice); the CPU dry run computes in bf16."""
        extra = real_overrides(preset) if real else []
        if extra is None:
            return None
        precision = precision or ("bf16-mixed" if self.dry_run else None)
        return [*PRESETS[preset], *extra, *(TINY if self.dry_run else GPU_DATA),
                *([f"trainer.precision={precision}"] if precision else [])]

    def triple(self, preset: str, real: bool) -> None:
        """Model-only, loader-only and end-to-end rates of one preset and data kind."""
        ov = self.overrides(preset, real)
        if ov is None:
            self.result["skipped"].append(f"{preset} real images: no MPII slice at {real_slices_dir() / 'mpii'}")
            return
        report = throughput(ov, [self.workers], self.steps, 1 if self.dry_run else 2, self.device)
        row = report["rows"][0]
        self.result["throughput"].append({"preset": preset, "data": "real (MPII slice)" if real else "SynthPose",
                                          "overrides": ov, "setup": report["setup"], **row})
        gc.collect()  # the loaders' worker processes go with their loaders

    def speed_variants(self, names: list[str]) -> None:
        """Model-only img/s of the ResNet-50 256 preset: fp32 vs bf16, NCHW vs channels_last, eager vs compiled."""
        for name in names:
            precision, extra = VARIANTS[name]
            cfg = compose_preset([*self.overrides("integral_r50_256", False, precision), *extra])
            work = Workload(cfg, pick_device(self.device))
            start = time.time()
            work.step(work.batch)  # compiles here when compiling
            first = time.time() - start
            s = statistics.median(time_model_only(work, self.steps, warmup=2))
            self.result["speed_variants"].append({"variant": name, "backbone": str(cfg.backbone.name),
                                                  "batch_size": work.batch_size,
                                                  "input_size": int(cfg.data.input_size),
                                                  "precision": str(cfg.trainer.precision),
                                                  "model_steps_per_s": 1 / s, "model_img_per_s": work.batch_size / s,
                                                  "first_step_s": first})
            del work
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def lightning(self) -> None:
        """posereg's Lightning loop vs a plain PyTorch loop on the same pre-loaded batches (quickstart on the GPU)."""
        steps, rounds = (4, 1) if self.dry_run else (200, 2)
        ov = [*self.overrides("quickstart", False), *(["trainer.accelerator=cpu"] if self.dry_run else [])]
        r = lightning_overhead(ov, steps, rounds, profile=False, device=self.device)
        self.result["lightning"] = {"steps": r["steps"], "ratio": r["ratio"], "cpu_ratio": r["cpu_ratio"],
                                    "plain_ms": 1000 * r["plain"]["s_per_step"],
                                    "lightning_ms": 1000 * r["lightning"]["s_per_step"]}

    def sspnet(self) -> None:
        """SSP-Net frames/s of the full network and of the p4l1 cut, batch 1 and 32 (paper model on the GPU)."""
        threads = torch.get_num_threads()  # the CPU bench (dry run) sets one thread for its own timings
        report = run_sspnet_bench(device=self.device, out_dir=None, quick=self.dry_run,
                                  batch_sizes=(1, 2) if self.dry_run else None, repeats=2 if self.dry_run else 10,
                                  warmup=1 if self.dry_run else 3)
        torch.set_num_threads(threads)
        rows = {r["cut"]: r for r in report["cuts"]}
        full = report["cuts"][-1]["cut"]
        out = {"device": report["device"], "config": report["config"], "full_cut": full, "cuts": {}}
        for cut in (full, "p4l1"):
            out["cuts"][cut] = {b: {"fps": v["fps"], "latency_ms": 1000 * v["latency_s"], "speedup": v["speedup"]}
                                for b, v in rows[cut]["batch"].items()}
        self.result["sspnet"] = out


def test_results(xml_path: Path | None, exit_code: int | None) -> dict[str, Any]:
    """Counts from pytest's JUnit XML (and its exit code)."""
    out: dict[str, Any] = {"exit_code": exit_code}
    if xml_path is None or not xml_path.is_file():
        out["note"] = "no JUnit XML"
        return out
    root = ET.parse(xml_path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    for key in ("tests", "failures", "errors", "skipped"):
        out[key] = int(suite.get(key, 0)) if suite is not None else None
    failed = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    out["failed"] = failed
    return out


def machine(dry_run: bool) -> dict[str, Any]:
    """What ran it."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
            "cuda": torch.version.cuda, "dry_run": dry_run, "amp_precision": amp_precision()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_precision=torch.get_float32_matmul_precision())
    return info


def markdown(r: dict[str, Any]) -> str:
    """The summary as markdown."""
    m, t = r["machine"], r["tests"]
    gpu = m.get("gpu", "no GPU (CPU dry run)")
    lines = [f"# GPU check: {gpu}", "",
             f"torch {m['torch']} (CUDA {m['cuda']}), Python {m['python']}, {m['cpu_cores']} CPU cores; "
             f"`trainer=gpu` precision here: {m['amp_precision']}; total {r['seconds']:.0f} s"
             + (" — **CPU dry run: tiny sizes, numbers mean nothing**" if m["dry_run"] else "") + ".", "",
             f"GPU tests (`pytest -m gpu`): exit {t.get('exit_code')}, {t.get('tests')} tests, "
             f"{t.get('failures')} failed, {t.get('errors')} errors, {t.get('skipped')} skipped"
             + (f"; failed: {', '.join(t['failed'])}" if t.get("failed") else "") + ".", ""]
    if r["throughput"]:
        lines += ["## Throughput (model-only / loader-only / end-to-end)", "",
                  "| preset | data | model, batch, input | workers | model-only img/s | loader-only img/s | "
                  "end-to-end img/s | end-to-end / model-only |", "|---|---|---|---|---|---|---|---|"]
        for row in r["throughput"]:
            s = row["setup"]
            lines.append(f"| {row['preset']} | {row['data']} | {s['backbone']}, {s['batch_size']}, {s['input_size']}² "
                         f"{s['precision']}{', channels_last' if s['channels_last'] else ''} | {row['workers']} | "
                         f"{row['model_img_per_s']:.0f} | {row['loader_img_per_s']:.0f} | {row['e2e_img_per_s']:.0f} | "
                         f"**{row['ratio']:.3f}** |")
        lines.append("")
    if r["speed_variants"]:
        base = r["speed_variants"][0]["model_img_per_s"]
        v0 = r["speed_variants"][0]
        lines += [f"## {v0['backbone']} {v0['input_size']}² I1, batch {v0['batch_size']}, model-only: precision, "
                  "layout, compile", "",
                  "| variant | img/s | vs fp32 eager | first step (s) |", "|---|---|---|---|"]
        for v in r["speed_variants"]:
            lines.append(f"| {v['variant']} | {v['model_img_per_s']:.0f} | {v['model_img_per_s'] / base:.2f}x | "
                         f"{v['first_step_s']:.1f} |")
        lines.append("")
    if r["sspnet"]:
        sp = r["sspnet"]
        c = sp["config"]
        lines += [f"## SSP-Net frames/s ({sp['device']}, {c['input_size']}², growth {c['growth']}, "
                  f"K={c['num_pyramids']}, amp {c['amp']}, channels_last {c['channels_last']})", "",
                  "| cut | batch | FPS | ms | speed-up vs full |", "|---|---|---|---|---|"]
        for cut, batches in sp["cuts"].items():
            for b, v in batches.items():
                label = f"{cut} (full)" if cut == sp["full_cut"] else cut
                lines.append(f"| {label} | {b} | {v['fps']:.1f} | {v['latency_ms']:.2f} | {v['speedup']:.2f} |")
        lines.append("")
    if r.get("lightning"):
        lt = r["lightning"]
        lines += ["## Lightning overhead (quickstart, pre-loaded batches)", "",
                  f"plain PyTorch {lt['plain_ms']:.2f} ms per step, posereg's Lightning loop "
                  f"{lt['lightning_ms']:.2f} ms ({lt['steps']} steps): Lightning / plain steps/s "
                  f"**{lt['ratio']:.3f}** (goal >= 0.97).", ""]
    for key, title in (("skipped", "Skipped"), ("errors", "Errors")):
        if r[key]:
            lines += [f"## {title}", "", *(f"- {x}" for x in r[key]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line (scripts/gpu_check.sh calls it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--deadline", type=float, default=None, help="unix time by which to be done")
    p.add_argument("--started", type=float, default=None, help="unix time the whole check started")
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--tests-xml", type=Path, default=None)
    p.add_argument("--tests-exit", type=int, default=None)
    p.add_argument("--cpu-dry-run", action="store_true")
    a = p.parse_args(argv)
    started = a.started or time.time()
    if not a.cpu_dry_run and not torch.cuda.is_available():
        sys.exit("error: no CUDA device visible (use --cpu-dry-run to check the script on a CPU)")
    check = Check(a.deadline or time.time() + 300, a.cpu_dry_run, 1 if a.cpu_dry_run else a.workers)
    dry = a.cpu_dry_run
    check.section("throughput quickstart SynthPose", 20, lambda: check.triple("quickstart", False))
    check.section("throughput integral_r50_256 SynthPose", 40, lambda: check.triple("integral_r50_256", False))
    check.section("SSP-Net FPS", 60, check.sspnet)
    check.section("throughput quickstart real images", 25, lambda: check.triple("quickstart", True))
    check.section("throughput integral_r50_256 real images", 40, lambda: check.triple("integral_r50_256", True))
    eager = [n for n in VARIANTS if "compiled" not in n]
    check.section("fp32 vs bf16, eager", 30, lambda: check.speed_variants(eager))
    check.section("Lightning overhead", 40, check.lightning)
    if dry:
        check.result["skipped"].append("torch.compile: not timed in the CPU dry run (inductor's C++ build)")
    else:
        check.section("torch.compile", 150, lambda: check.speed_variants([n for n in VARIANTS if n not in eager]))
    result = {"machine": machine(dry), "tests": test_results(a.tests_xml, a.tests_exit), **check.result,
              "seconds": time.time() - started}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (a.out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
