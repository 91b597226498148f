"""The Python half of scripts/gpu_check.sh: what ran it, the measurements, and the summary with the goals of issue 29.

    python scripts/gpu_check.py probe --out DIR             # DIR/machine.json: GPU model, driver, torch, CUDA, cuDNN
    python scripts/gpu_check.py measure --out DIR --deadline UNIX_TIME [--workers N] [--cpu-dry-run]
    python scripts/gpu_check.py summary --out DIR           # DIR/gpu_check.json + gpu_check.md from what is there

`measure` runs its sections in order of importance; each is skipped (and named as skipped) when the time left
before --deadline is below its estimate, and DIR/measurements.json is rewritten after each one, so that a step
cut by its deadline keeps what it had measured. `--cpu-dry-run` runs the sections on the CPU with tiny sizes
(compiling and CUDA graphs excepted), to check the script on a machine without a GPU: its numbers mean nothing.
`summary` imports neither torch nor the benchmarks: it writes the summary whatever happened to the other steps.

Presets (the Integral paper's MPII setting, `experiment=integral_mpii method=i1`, needs MPII, so its SynthPose
variant stands in: the same ResNet-50, 256x256 crops, 2 deconvolutions, batch 128, bf16 + channels_last from
`trainer=gpu`, with `data=synth2d`); its real-image twin reads the MPII slice of the real data slices (5 JPEGs,
repeated to fill the epoch, decoded and augmented as in training: POSEREG_REAL_SLICES, see posereg.paths):
  integral_r50_256     experiment=integral_mpii method=i1 data=synth2d
  quickstart           experiment=quickstart (ResNet-18, 64x64, batch 32)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posereg.jsonio import read_json, write_json

PRESETS = {
    "quickstart": ["experiment=quickstart", "trainer=gpu", "callbacks.speed.compile=false"],
    "integral_r50_256": ["experiment=integral_mpii", "method=i1", "data=synth2d", "callbacks.speed.compile=false"],
}
LABELS = {"quickstart": "quickstart (ResNet-18 64² batch 32)", "integral_r50_256": "ResNet-50 256² I1 batch 128"}
# the dry run swaps in tiny sizes (same code paths)
TINY = ["data.input_size=64", "data.batch_size=4", "backbone.name=resnet10t", "method.head.width=16"]
GPU_DATA = ["data.pin_memory=true"]
# model-only variants of the ResNet-50 256 preset: name -> (precision, overrides)
VARIANTS = {
    "fp32, eager": ("32-true", ["callbacks.speed.channels_last=false"]),
    "bf16, eager": ("bf16-mixed", ["callbacks.speed.channels_last=false"]),
    "bf16, channels_last, eager": ("bf16-mixed", []),
}
COMPILED = ["callbacks.speed.compile=true"]
# issue 29's goals for one H100: (what, key in the derived numbers, goal, higher is better)
GOALS = [
    ("ResNet-50 256² I1 training, end-to-end img/s, bf16 + channels_last", "r50_e2e_img_s", 1500.0),
    ("the same, compiled", "r50_e2e_img_s_compiled", 1500.0),
    ("end-to-end / model-only on real JPEGs (ResNet-50 256²)", "r50_real_ratio", 0.95),
    ("SSP-Net 256² batch 1, full network FPS (best of eager / CUDA graphs)", "sspnet_full_fps_b1", 1000.0),
    ("SSP-Net p4l1 cut / full network speed-up, batch 1", "sspnet_p4l1_speedup_b1", 1.67),
    ("Lightning loop / plain loop steps/s (ResNet-50 256² I1)", "lightning_ratio_r50", 0.98),
]
# step outcomes written by gpu_check.sh to steps.tsv: name, status, exit code, seconds, limit
STEP_FIELDS = ("step", "status", "exit_code", "seconds", "limit_s")


# ------------------------------------------------------------------------------------------------- probe
def probe(out: Path) -> dict[str, Any]:
    """What ran the check: GPU model and memory, driver, torch, CUDA, cuDNN, Python, cores."""
    import torch

    from posereg.devices import amp_precision

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cpu_cores": os.cpu_count(),
            "cuda_available": torch.cuda.is_available(), "amp_precision": amp_precision()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    multiprocessors=props.multi_processor_count)
    info.update(nvidia_smi())
    write_json(out / "machine.json", info)
    return info


def nvidia_smi() -> dict[str, str]:
    """GPU name and driver from nvidia-smi ({} without one): the summary names the GPU even if torch failed."""
    try:
        line = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    parts = [p.strip() for p in line.splitlines()[0].split(",")] if line.strip() else []
    return dict(zip(("smi_gpu", "driver", "smi_memory"), parts, strict=False))


# ----------------------------------------------------------------------------------------------- measure
def real_overrides(preset: str) -> list[str] | None:
    """Overrides that make a preset read the real MPII slice instead of SynthPose (None without the slice)."""
    from posereg.paths import real_slices_dir

    root = real_slices_dir() / "mpii"
    if not (root / "test_mpii.json").is_file():
        return None
    common = [f"data.root={root}", "data.sources.mpii.ann_file=test_mpii.json", "data.sources.mpii.image_dir=.",
              "data.head_size_proxy=true"]
    if preset == "quickstart":  # its data block names the synth source: drop it with the data group swap
        return ["data=mpii", "~data.sources.synth", *common]
    return ["data=mpii", *common, "data.epoch_length=8192"]


class Check:
    """The sections, their results (saved after each one), and the deadline."""

    def __init__(self, out: Path, deadline: float, dry_run: bool, workers: int) -> None:
        self.out, self.deadline, self.dry_run, self.workers = out, deadline, dry_run, workers
        self.device = "cpu" if dry_run else "cuda"
        self.steps = 2 if dry_run else 25
        self.result: dict[str, Any] = {"dry_run": dry_run, "workers": workers, "throughput": [],
                                       "speed_variants": [], "sspnet": {}, "lightning": [], "sections": [],
                                       "skipped": [], "errors": []}
        self.save()

    def save(self) -> None:
        write_json(self.out / "measurements.json", self.result)

    def left(self) -> float:
        return self.deadline - time.time()

    def section(self, name: str, estimate_s: float, fn: Callable[[], None]) -> None:
        """Run one section if `estimate_s` fits before the deadline; record a skip or an error otherwise."""
        if self.left() < estimate_s:
            self.result["skipped"].append(f"{name}: {self.left():.0f} s left, needs ~{estimate_s:.0f} s")
            print(f"[gpu_check] skip {name}", flush=True)
            self.save()
            return
        start = time.time()
        print(f"[gpu_check] {name} ...", flush=True)
        status = "ok"
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - one failing section must not lose the others' numbers
            first = (str(err).splitlines() or [""])[0]
            self.result["errors"].append(f"{name}: {type(err).__name__}: {first}")
            status = "error"
            traceback.print_exc()
        self.result["sections"].append({"section": name, "status": status, "seconds": time.time() - start})
        print(f"[gpu_check] {name}: {time.time() - start:.0f} s", flush=True)
        self.save()
        self.release()

    def release(self) -> None:
        """Free what a section left on the device before the next one measures."""
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def overrides(self, preset: str, real: bool, precision: str | None = None) -> list[str] | None:
        """The preset's overrides (None: real images asked for but no slice); the CPU dry run computes in bf16."""
        extra = real_overrides(preset) if real else []
        if extra is None:
            return None
        precision = precision or ("bf16-mixed" if self.dry_run else None)
        return [*PRESETS[preset], *extra, *(TINY if self.dry_run else GPU_DATA),
                *([f"trainer.precision={precision}"] if precision else [])]

    def triple(self, preset: str, real: bool, extra: tuple[str, ...] = ()) -> None:
        """Model-only, loader-only and end-to-end rates of one preset and data kind (loader: --workers workers)."""
        from posereg.bench.throughput import throughput
        from posereg.paths import real_slices_dir

        ov = self.overrides(preset, real)
        if ov is None:
            self.result["skipped"].append(f"{preset} real images: no MPII slice at {real_slices_dir() / 'mpii'}")
            return
        ov = [*ov, *extra]
        report = throughput(ov, [self.workers], self.steps, 1 if self.dry_run else 2, self.device)
        s = report["setup"]
        self.result["throughput"].append({"preset": preset, "data": "real" if real else "synth",
                                          "compiled": bool(s["compile"]), "overrides": ov, "setup": s,
                                          **report["rows"][0]})

    def speed_variants(self) -> None:
        """Model-only img/s of the ResNet-50 256 preset: fp32 vs bf16, NCHW vs channels_last (eager)."""
        from posereg.bench.throughput import Workload, compose_preset, time_model_only
        from posereg.devices import pick_device

        for name, (precision, extra) in VARIANTS.items():
            cfg = compose_preset([*self.overrides("integral_r50_256", False, precision), *extra])
            work = Workload(cfg, pick_device(self.device))
            s = statistics.median(time_model_only(work, self.steps, warmup=3))
            self.result["speed_variants"].append({"variant": name, "backbone": str(cfg.backbone.name),
                                                  "batch_size": work.batch_size,
                                                  "input_size": int(cfg.data.input_size),
                                                  "precision": str(cfg.trainer.precision),
                                                  "model_steps_per_s": 1 / s, "model_img_per_s": work.batch_size / s})
            del work
            self.release()

    def lightning(self, preset: str) -> None:
        """posereg's Lightning loop vs a plain PyTorch loop on the same pre-loaded batches of a preset."""
        from posereg.bench.lightning_overhead import lightning_overhead

        steps, rounds = (4, 1) if self.dry_run else ((60, 2) if preset == "integral_r50_256" else (200, 2))
        ov = [*self.overrides(preset, False), *(["trainer.accelerator=cpu"] if self.dry_run else [])]
        r = lightning_overhead(ov, steps, rounds, profile=False, device=self.device)
        self.result["lightning"].append({"preset": preset, "steps": r["steps"], "ratio": r["ratio"],
                                         "cpu_ratio": r["cpu_ratio"], "plain_ms": 1000 * r["plain"]["s_per_step"],
                                         "lightning_ms": 1000 * r["lightning"]["s_per_step"]})

    def sspnet(self, cuda_graphs: bool) -> None:
        """SSP-Net frames/s of the full network and its cuts (eager: every cut, batch 1 and 32; CUDA graphs:
        the full network and p4l1 at batch 1), at the paper's size on the GPU."""
        import torch

        from posereg.bench.sspnet import run_sspnet_bench

        threads = torch.get_num_threads()  # the CPU bench (dry run) sets one thread for its own timings
        report = run_sspnet_bench(device=self.device, out_dir=None, quick=self.dry_run,
                                  batch_sizes=(1,) if cuda_graphs else ((1, 2) if self.dry_run else None),
                                  repeats=2 if self.dry_run else 20, warmup=1 if self.dry_run else 5,
                                  cuts=["p4l1"] if cuda_graphs else None, cuda_graphs=cuda_graphs)
        torch.set_num_threads(threads)
        rows = {r["cut"]: r for r in report["cuts"]}
        full = report["cuts"][-1]["cut"]
        out = {"device": report["device"], "config": report["config"], "full_cut": full, "cuts": {}}
        for cut in (full, "p4l1"):
            out["cuts"][cut] = {b: {"fps": v["fps"], "latency_ms": 1000 * v["latency_s"], "speedup": v["speedup"]}
                                for b, v in rows[cut]["batch"].items()}
        self.result["sspnet"]["cuda_graphs" if cuda_graphs else "eager"] = out


def measure(a: argparse.Namespace) -> None:
    """The measurements, most important first, inside the deadline."""
    import torch

    if not a.cpu_dry_run and not torch.cuda.is_available():
        sys.exit("error: no CUDA device visible (use --cpu-dry-run to check the script on a CPU)")
    workers = 1 if a.cpu_dry_run else (a.workers or os.cpu_count() or 1)
    check = Check(a.out, a.deadline, a.cpu_dry_run, workers)
    r50 = "integral_r50_256"
    check.section("ResNet-50 256² I1 throughput, SynthPose", 45, lambda: check.triple(r50, False))
    check.section("ResNet-50 256² I1 throughput, real JPEGs", 45, lambda: check.triple(r50, True))
    check.section("SSP-Net FPS, eager", 60, lambda: check.sspnet(False))
    check.section("fp32 vs bf16, NCHW vs channels_last (model-only)", 40, check.speed_variants)
    check.section("Lightning vs plain loop, ResNet-50 256² I1", 45, lambda: check.lightning(r50))
    if a.cpu_dry_run:
        check.result["skipped"] += ["torch.compile: not timed in the CPU dry run (inductor's C++ build)",
                                    "CUDA graphs: none on the CPU"]
    else:
        check.section("torch.compile, ResNet-50 256² I1 throughput, SynthPose", 150,
                      lambda: check.triple(r50, False, tuple(COMPILED)))
        check.section("SSP-Net FPS, CUDA graphs, batch 1", 30, lambda: check.sspnet(True))
    check.section("quickstart throughput, SynthPose", 20, lambda: check.triple("quickstart", False))
    check.section("quickstart throughput, real JPEGs", 25, lambda: check.triple("quickstart", True))
    check.section("Lightning vs plain loop, quickstart", 30, lambda: check.lightning("quickstart"))


# ----------------------------------------------------------------------------------------------- summary
def test_results(out: Path) -> dict[str, Any]:
    """Counts and failures of the `gpu` tests: from pytest's JUnit XML, else (a run cut off) from its -v log."""
    xml, log = out / "gpu_tests.xml", out / "gpu_tests.log"
    if xml.is_file():
        root = ET.parse(xml).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        res: dict[str, Any] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        res["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
                         if c.find("failure") is not None or c.find("error") is not None]
        res["source"] = "junit xml"
        return res
    if not log.is_file():
        return {"source": "none: the tests did not run"}
    outcomes: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and "::" in parts[0] and parts[1] in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            outcomes[parts[0]] = parts[1]
    values = list(outcomes.values())
    return {"tests": len(values), "failures": values.count("FAILED"), "errors": values.count("ERROR"),
            "skipped": values.count("SKIPPED"), "passed": values.count("PASSED"),
            "failed": [t for t, o in outcomes.items() if o in ("FAILED", "ERROR")],
            "source": "pytest -v log (no JUnit XML: the run was cut before its end)"}


def read_steps(out: Path) -> list[dict[str, Any]]:
    """The step outcomes gpu_check.sh recorded."""
    path = out / "steps.tsv"
    rows = [dict(zip(STEP_FIELDS, line.split("\t"), strict=False))
            for line in (path.read_text().splitlines() if path.is_file() else []) if line.strip()]
    return rows


def derived(m: dict[str, Any]) -> dict[str, float]:
    """The numbers the goals and the ratios read, from the measurements (a key is absent when not measured)."""
    d: dict[str, float] = {}
    for row in m.get("throughput", []):
        if row["preset"] != "integral_r50_256":
            continue
        if row["data"] == "synth":
            key = "r50_e2e_img_s_compiled" if row["compiled"] else "r50_e2e_img_s"
            d[key] = row["e2e_img_per_s"]
            d[key.replace("e2e", "model")] = row["model_img_per_s"]
        elif not row["compiled"]:
            d["r50_real_ratio"] = row["ratio"]
    variants = {v["variant"]: v["model_img_per_s"] for v in m.get("speed_variants", [])}
    pairs = {"bf16 / fp32 (model-only, eager, NCHW)": ("bf16, eager", "fp32, eager"),
             "channels_last on / off (model-only, bf16, eager)": ("bf16, channels_last, eager", "bf16, eager")}
    for name, (a, b) in pairs.items():
        if a in variants and b in variants:
            d[name] = variants[a] / variants[b]
    if "r50_model_img_s_compiled" in d and "r50_model_img_s" in d:
        d["compiled / eager (model-only, bf16, channels_last)"] = d["r50_model_img_s_compiled"] / d["r50_model_img_s"]
        d["compiled / eager (end-to-end)"] = d["r50_e2e_img_s_compiled"] / d["r50_e2e_img_s"]
    sp = m.get("sspnet", {})
    fps = {mode: r["cuts"][r["full_cut"]]["1"]["fps"] for mode, r in sp.items() if "1" in r["cuts"][r["full_cut"]]}
    if fps:
        d["sspnet_full_fps_b1"] = max(fps.values())
        best = max(fps, key=fps.get)
        d["sspnet_p4l1_speedup_b1"] = sp[best]["cuts"]["p4l1"]["1"]["speedup"]
    if len(fps) == 2:
        d["CUDA graphs / eager (SSP-Net full, batch 1)"] = fps["cuda_graphs"] / fps["eager"]
    for row in m.get("lightning", []):
        d["lightning_ratio_r50" if row["preset"] == "integral_r50_256" else "lightning_ratio_quickstart"] = row["ratio"]
    return d


def summarize(out: Path) -> dict[str, Any]:
    """gpu_check.json + gpu_check.md from machine.json, steps.tsv, the test results and measurements.json."""
    machine = read_json(out / "machine.json") or {"note": "no machine.json: the probe step did not finish"}
    if "smi_gpu" not in machine:
        machine.update(nvidia_smi())
    if "torch" not in machine:
        from importlib.metadata import PackageNotFoundError, version

        try:
            machine["torch"] = version("torch")
        except PackageNotFoundError:
            machine["torch"] = None
    m = read_json(out / "measurements.json") or {}
    numbers = derived(m)
    goals = [{"what": what, "value": numbers.get(key), "goal": goal,
              "met": None if key not in numbers else numbers[key] >= goal} for what, key, goal in GOALS]
    ratios = {k: v for k, v in numbers.items() if " / " in k}
    result = {"machine": machine, "steps": read_steps(out), "tests": test_results(out), "goals": goals,
              "ratios": ratios, "measurements": m}
    write_json(out / "gpu_check.json", result)
    (out / "gpu_check.md").write_text(markdown(result))
    return result


def _num(v: float | None) -> str:
    return "not measured" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3f}")


def markdown(r: dict[str, Any]) -> str:
    """The summary as markdown."""
    mc, t, m = r["machine"], r["tests"], r["measurements"]
    gpu = mc.get("gpu") or mc.get("smi_gpu") or "no GPU"
    dry = m.get("dry_run", not mc.get("cuda_available", False))
    lines = [f"# GPU check: {gpu}", "",
             f"torch {mc.get('torch')}, CUDA {mc.get('cuda')}, cuDNN {mc.get('cudnn')}, driver {mc.get('driver')}, "
             f"Python {mc.get('python')}, {mc.get('cpu_cores')} CPU cores, {m.get('workers')} loader workers; "
             f"`trainer=gpu` precision here: {mc.get('amp_precision')}"
             + (" — **CPU dry run: tiny sizes, the numbers mean nothing**" if dry else "") + ".", "",
             "## Steps", "", "| step | outcome | exit code | seconds | limit (s) |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(s.get(k)) for k in STEP_FIELDS) + " |" for s in r["steps"]]
    lines += ["", f"GPU tests (`pytest -m gpu`, {t.get('source')}): {t.get('tests')} tests, {t.get('failures')} "
              f"failed, {t.get('errors')} errors, {t.get('skipped')} skipped"
              + (f"; failed: {', '.join(t['failed'])}" if t.get("failed") else "") + ".", "",
              "## Goals (issue 29)", "", "| measurement | value | goal | met |", "|---|---|---|---|"]
    for g in r["goals"]:
        met = "—" if g["met"] is None else ("yes" if g["met"] else "**no**")
        lines.append(f"| {g['what']} | {_num(g['value'])} | ≥ {g['goal']:g} | {met} |")
    if r["ratios"]:
        lines += ["", "## Ratios (each within this run)", "", "| ratio | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in r["ratios"].items()]
    if m.get("throughput"):
        lines += ["", "## Throughput (model-only / loader-only / end-to-end)", "",
                  "| preset | data | compiled | workers | model-only img/s | loader-only img/s | end-to-end img/s | "
                  "end-to-end / model-only |", "|---|---|---|---|---|---|---|---|"]
        for row in m["throughput"]:
            s = row["setup"]
            lines.append(f"| {s['backbone']} {s['input_size']}² batch {s['batch_size']} {s['precision']}"
                         f"{', channels_last' if s['channels_last'] else ''} ({row['preset']}) | {row['data']} | "
                         f"{'yes' if row['compiled'] else 'no'} | {row['workers']} | {row['model_img_per_s']:.0f} | "
                         f"{row['loader_img_per_s']:.0f} | {row['e2e_img_per_s']:.0f} | **{row['ratio']:.3f}** |")
    if m.get("speed_variants"):
        v0 = m["speed_variants"][0]
        lines += ["", f"## {v0['backbone']} {v0['input_size']}² I1, batch {v0['batch_size']}, model-only", "",
                  "| variant | img/s | vs fp32 eager |", "|---|---|---|"]
        base = v0["model_img_per_s"]
        lines += [f"| {v['variant']} | {v['model_img_per_s']:.0f} | {v['model_img_per_s'] / base:.2f}x |"
                  for v in m["speed_variants"]]
    for mode, sp in m.get("sspnet", {}).items():
        c = sp["config"]
        lines += ["", f"## SSP-Net frames/s, {mode.replace('_', ' ')} ({sp['device']}, {c['input_size']}², growth "
                  f"{c['growth']}, K={c['num_pyramids']}, amp {c['amp']}, channels_last {c['channels_last']})", "",
                  "| cut | batch | FPS | ms | speed-up vs full |", "|---|---|---|---|---|"]
        for cut, batches in sp["cuts"].items():
            label = f"{cut} (full)" if cut == sp["full_cut"] else cut
            lines += [f"| {label} | {b} | {v['fps']:.1f} | {v['latency_ms']:.2f} | {v['speedup']:.2f} |"
                      for b, v in batches.items()]
    if m.get("lightning"):
        lines += ["", "## Lightning loop vs plain PyTorch loop (pre-loaded batches)", "",
                  "| preset | steps | plain ms/step | Lightning ms/step | Lightning / plain steps/s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {x['preset']} | {x['steps']} | {x['plain_ms']:.2f} | {x['lightning_ms']:.2f} | "
                  f"**{x['ratio']:.3f}** |" for x in m["lightning"]]
    for key, title in (("sections", "Sections"), ("skipped", "Skipped"), ("errors", "Errors")):
        items = m.get(key) or []
        if key == "sections":
            items = [f"{s['section']}: {s['status']}, {s['seconds']:.0f} s" for s in items]
        if items:
            lines += ["", f"## {title}", "", *(f"- {x}" for x in items)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line (scripts/gpu_check.sh calls it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("probe", "measure", "summary"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--deadline", type=float, default=None, help="measure: unix time by which to be done")
    p.add_argument("--workers", type=int, default=None, help="measure: loader workers (default: the CPU cores)")
    p.add_argument("--cpu-dry-run", action="store_true")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.command == "probe":
        print(probe(a.out))
    elif a.command == "measure":
        a.deadline = a.deadline or time.time() + 300
        measure(a)
    else:
        print(markdown(summarize(a.out)))


if __name__ == "__main__":
    main()
