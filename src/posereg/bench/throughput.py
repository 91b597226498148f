"""Training throughput of a preset: model-only, loader-only and end-to-end steps/s, side by side in one process.

Model-only: forward + backward + optimizer step of the real PoseModule (built from the composed config) on one
batch already on the device; loader-only: the real training DataLoader with N workers and no model; end to
end: that loader feeding those steps. Goal (issue 4): end-to-end / model-only >= 0.97 wherever the loader has
the cores it needs. Precision, channels_last and torch.compile follow the config (`trainer.precision`,
`callbacks.speed`), as in training.

    python -m posereg.bench.throughput [--workers 0 1 2] [--steps 30] [experiment=quickstart key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.devices import pick_device
from posereg.errors import ConfigError
from posereg.paths import BENCH_DIR, CONF_DIR

GOAL = 0.97
DEFAULT_PRESET = ("experiment=quickstart",)
Batch = dict[str, Any]


def compose_preset(overrides: Sequence[str]) -> DictConfig:
    """The root config with `overrides`, composed as posereg-train would (resolvers registered)."""
    from hydra import compose, initialize_config_dir

    from posereg.runs import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings end there)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_for(precision: Any, device: torch.device) -> tuple[Callable[[], AbstractContextManager], bool]:
    """(autocast context factory, needs a grad scaler) for a Lightning `trainer.precision` value."""
    p = str(precision)
    if p in ("32-true", "32", "64-true", "64"):
        return nullcontext, False
    if p in ("bf16-mixed", "bf16"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16), False
    if p in ("16-mixed", "16"):
        return lambda: torch.autocast(device.type, dtype=torch.float16), device.type == "cuda"
    raise ConfigError(f"trainer.precision={p}: the benchmarks time 32-true, bf16-mixed or 16-mixed")


def speed_callback(cfg: DictConfig) -> Any:
    """The configured `callbacks.speed` (posereg.training.speed.SpeedOptions), or None."""
    from posereg.config import instantiate

    node = OmegaConf.select(cfg, "callbacks.speed")
    return instantiate(node) if node is not None and "_target_" in node else None


class Workload:
    """The preset's PoseModule, optimizer and precision on a device: `step(batch)` is one training step."""

    def __init__(self, cfg: DictConfig, device: torch.device) -> None:
        from posereg.data import build_datamodule
        from posereg.data.collate import collate_samples
        from posereg.methods import build_module

        torch.manual_seed(int(cfg.seed))
        self.cfg, self.device = cfg, device
        self.datamodule = build_datamodule(cfg)
        self.datamodule.setup("fit")
        self.module = build_module(cfg, self.datamodule.info)
        self.speed = speed_callback(cfg)
        if self.speed is not None:
            self.speed.setup(None, self.module, "fit")
        self.module.to(device).train()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = bool(cfg.trainer.get("benchmark"))
        opt = self.module.configure_optimizers()
        self.optimizer = opt["optimizer"] if isinstance(opt, dict) else opt
        self.autocast, scaled = autocast_for(cfg.trainer.precision, device)
        self.scaler = torch.amp.GradScaler(device.type) if scaled else None
        self.batch_size = int(cfg.data.batch_size)
        first = collate_samples(self.datamodule.preview("train", self.batch_size))  # no worker involved
        self.batch = self.to_device(first)

    def to_device(self, batch: Batch) -> Batch:
        """A loader batch on the device (non-blocking from pinned memory), channels_last when configured."""
        from lightning.pytorch.utilities import move_data_to_device

        batch = move_data_to_device(batch, self.device)
        if self.speed is not None:
            self.speed.prepare_batch(batch)
        return batch

    def step(self, batch: Batch) -> None:
        """Forward, the method's loss, backward, optimizer step (what Lightning's training step does)."""
        module = self.module
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = module.compute_loss(module(batch["image"]), batch)["total"]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()

    def warm_up(self, steps: int = 3) -> None:
        """Untimed steps: kernel selection and JIT (oneDNN's bf16 kernels take seconds on their first use)."""
        for _ in range(steps):
            self.step(self.batch)
        sync(self.device)

    def loader(self, num_workers: int) -> Any:
        """The preset's real training DataLoader with `num_workers` workers (persistent when > 0)."""
        from posereg.data import build_datamodule

        cfg = self.cfg.copy()
        with open_dict(cfg):
            cfg.data.num_workers, cfg.data.persistent_workers = int(num_workers), int(num_workers) > 0
        dm = build_datamodule(cfg)
        dm.setup("fit")
        return dm.train_dataloader()


def _batches(loader: Any) -> Iterator[Batch]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def time_calls(fn: Callable[[], Any], steps: int, device: torch.device) -> list[float]:
    """Seconds of each of `steps` calls of fn: one by one on a CPU (so that a burst of other load on a shared
    machine spoils single steps, which the median drops), as a block mean on a GPU (whose queue must not drain)."""
    if device.type != "cuda":
        out = []
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
        return out
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return [(time.perf_counter() - start) / steps]


def time_model_only(work: Workload, steps: int, warmup: int = 2) -> list[float]:
    """Seconds per step on the pre-loaded batch (see `time_calls`)."""
    for _ in range(warmup):
        work.step(work.batch)
    return time_calls(lambda: work.step(work.batch), steps, work.device)


def _warm(loader: Any, workers: int) -> Iterator[Batch]:
    """A fresh pass over the loader with its workers started and their first batches taken (not timed)."""
    it = _batches(loader)
    for _ in range(max(1, 2 * workers)):
        next(it)
    return it


def time_loader_only(work: Workload, loader: Any, workers: int, batches: int) -> list[float]:
    """Seconds per batch of the loader alone (batches are not moved to the device)."""
    it = _warm(loader, workers)
    return time_calls(lambda: next(it), batches, torch.device("cpu"))


def time_end_to_end(work: Workload, loader: Any, workers: int, steps: int) -> list[float]:
    """Seconds per step with the loader feeding the steps (batches moved to the device inside the timing)."""
    it = _warm(loader, workers)
    work.step(work.to_device(next(it)))
    return time_calls(lambda: work.step(work.to_device(next(it))), steps, work.device)


def measure(work: Workload, workers: int, steps: int, rounds: int) -> dict[str, Any]:
    """The triple for one worker count: medians over `rounds` interleaved model-only / end-to-end blocks."""
    from posereg.data.workers import closing_loader

    # its workers end with the block, before the next loader forks (a fork must not inherit this one's)
    with closing_loader(work.loader(workers)) as loader:
        model, e2e = [], []
        for _ in range(rounds):  # interleaved, so that other load on the machine hits both alike
            model += time_model_only(work, steps)
            e2e += time_end_to_end(work, loader, workers, steps)
        load = statistics.median(time_loader_only(work, loader, workers, steps))
    b = work.batch_size
    row = {"workers": workers, "batch_size": b, "steps": steps, "rounds": rounds,
           "model_steps_per_s": 1 / statistics.median(model), "loader_batches_per_s": 1 / load,
           "e2e_steps_per_s": 1 / statistics.median(e2e)}
    row["e2e_img_per_s"] = row["e2e_steps_per_s"] * b
    row["model_img_per_s"] = row["model_steps_per_s"] * b
    row["loader_img_per_s"] = row["loader_batches_per_s"] * b
    row["ratio"] = row["e2e_steps_per_s"] / row["model_steps_per_s"]
    row["loader_headroom"] = row["loader_batches_per_s"] / row["model_steps_per_s"]
    return row


def describe_setup(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """What was timed: preset, model, input, precision, device, threads."""
    speed = OmegaConf.to_container(cfg.callbacks.speed) if OmegaConf.select(cfg, "callbacks.speed") else {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"method": str(cfg.method.name), "backbone": OmegaConf.select(cfg, "backbone.name"),
            "data": list(cfg.data.sources), "input_size": cfg.data.input_size, "batch_size": int(cfg.data.batch_size),
            "precision": str(cfg.trainer.precision), "channels_last": bool(speed.get("channels_last", False)),
            "compile": bool(speed.get("compile", False)), "device": name, "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average": round(os.getloadavg()[0], 1)}


def throughput(overrides: Sequence[str] = DEFAULT_PRESET, workers: Sequence[int] | None = None, steps: int = 30,
               rounds: int = 2, device: str = "auto") -> dict[str, Any]:
    """The triple of a preset for each worker count (default: the preset's `data.num_workers`)."""
    dev = pick_device(device)
    cfg = compose_preset(overrides)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    work = Workload(cfg, dev)
    work.warm_up()
    counts = list(workers) if workers is not None else [int(cfg.data.num_workers)]
    return {"overrides": list(overrides), "setup": describe_setup(cfg, dev),
            "rows": [measure(work, n, steps, rounds) for n in counts]}


def explain(report: dict[str, Any]) -> str:
    """Why the ratio is what it is, from the measured numbers (markdown paragraph)."""
    s, rows = report["setup"], report["rows"]
    cores, threads = s["cpu_cores"], s["torch_threads"]
    lines = []
    serial = next((r for r in rows if r["workers"] == 0), None)
    if serial is not None:
        t_model, t_load = 1 / serial["model_steps_per_s"], 1 / serial["loader_batches_per_s"]
        lines.append(f"With 0 workers the main process loads each batch between steps: loading takes "
                     f"{1000 * t_load:.0f} ms per batch beside a {1000 * t_model:.0f} ms step, so the ratio can be at "
                     f"most {t_model / (t_model + t_load):.3f} (measured {serial['ratio']:.3f}).")
    if s["device"] == "cpu":
        parallel = [r for r in rows if r["workers"] > 0]
        if parallel:
            worst = min(parallel, key=lambda r: r["ratio"])
            lines.append(f"With workers, loading runs beside the step, but the step already uses {threads} torch "
                         f"threads on {cores} cores: a worker has no core of its own and preempts the training "
                         f"threads (measured {worst['ratio']:.3f} with {worst['workers']} worker(s)), although the "
                         f"loader alone delivers {max(r['loader_headroom'] for r in parallel):.1f}x the batches the "
                         "model consumes.")
        lines.append(f"The goal (>= {GOAL}) needs cores for the workers beyond the training threads: on a GPU "
                     "machine the step runs on the GPU and the workers get their own cores.")
        if s["load_average"] > cores:
            lines.append(f"Other jobs shared the machine (load average {s['load_average']} on {cores} cores): the "
                         "absolute rates are below a quiet machine's; the ratios compare interleaved rounds.")
    return " ".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """Markdown table of a throughput report, with the explanation."""
    s = report["setup"]
    head = (f"# Training throughput: {' '.join(report['overrides'])}\n\n{s['method']} + {s['backbone']}, "
            f"{s['input_size']}² input, batch {s['batch_size']}, {s['precision']}, channels_last "
            f"{s['channels_last']}, compile {s['compile']}; {s['device']}, {s['cpu_cores']} cores, "
            f"{s['torch_threads']} torch threads, torch {s['torch']}, load average {s['load_average']} at the start. "
            f"Median step over {report['rows'][0]['rounds']} interleaved rounds of {report['rows'][0]['steps']} steps "
            f"(one step at a time on a CPU, block means on a GPU). Goal: end-to-end / model-only >= {GOAL}.\n\n")
    table = ["| workers | model-only steps/s | loader-only batches/s | end-to-end steps/s | end-to-end img/s | "
             "end-to-end / model-only | loader / model |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        table.append(f"| {r['workers']} | {r['model_steps_per_s']:.2f} | {r['loader_batches_per_s']:.2f} | "
                     f"{r['e2e_steps_per_s']:.2f} | {r['e2e_img_per_s']:.0f} | **{r['ratio']:.3f}** | "
                     f"{r['loader_headroom']:.2f} |")
    return head + "\n".join(table) + "\n\n" + explain(report) + "\n"


def run_throughput_bench(quick: bool = False, overrides: Sequence[str] = DEFAULT_PRESET,
                         workers: Sequence[int] | None = None, device: str = "auto", steps: int | None = None,
                         rounds: int | None = None, out_dir: str | Path | None = BENCH_DIR,
                         tag: str = "throughput") -> dict[str, Any]:
    """The triple, printed; `<out_dir>/<tag>.md|json` written (out_dir None: nothing written). On a CPU the default
    workers are 0, 1 and 2 (the explanation compares them); on a GPU the preset's."""
    dev = pick_device(device)
    if workers is None and dev.type == "cpu":
        workers = (0, 1, 2)
    report = throughput(overrides, workers, steps or (3 if quick else 30), rounds or (1 if quick else 2), device)
    publish(report, markdown(report), out_dir, tag)
    return report


def publish(report: dict[str, Any], text: str, out_dir: str | Path | None, tag: str) -> None:
    """Print a bench's markdown; write `<out_dir>/<tag>.md` and `.json` (out_dir None: print only)."""
    print(text)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{tag}.md").write_text(text)
        (out / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Command line: python -m posereg.bench.throughput [--workers N ...] [overrides ...]."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", default=list(DEFAULT_PRESET), help="Hydra overrides (a preset)")
    p.add_argument("--workers", type=int, nargs="*", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out-dir", default=str(BENCH_DIR))
    p.add_argument("--tag", default="throughput")
    a = p.parse_args(argv)
    run_throughput_bench(a.quick, a.overrides, a.workers, a.device, a.steps, a.rounds, a.out_dir, a.tag)


if __name__ == "__main__":
    main()
