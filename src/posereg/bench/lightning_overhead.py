"""Lightning's overhead: the same PoseModule on the same pre-loaded batches, posereg's full Lightning loop vs a
plain PyTorch loop, side by side in one process, and what each callback of the full loop costs.

The full loop is what `make train` runs: the run lifecycle's callbacks (`RunSession.callbacks()`), the config's
callbacks group (`instantiate_group(cfg.callbacks)`: checkpoints, early stopping, LR monitor, progress bar),
the append-only CSV logger and the trainer group's settings. Goal (issue 4): plain / Lightning time per step,
i.e. Lightning steps/s / plain steps/s, >= 0.97. Each loop trains one epoch (of the preset's length, validation
off); a step costs the median step-to-step time from the third step on (robust to bursts of other load on a
shared machine) plus the epoch-end work (last.ckpt, CSV rows) spread over the steps.

    python -m posereg.bench.lightning_overhead [--steps N] [--profile] [experiment=quickstart key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, open_dict

from posereg.bench.throughput import (
    DEFAULT_PRESET,
    Workload,
    compose_preset,
    describe_setup,
    publish,
    sync,
    time_calls,
)
from posereg.devices import pick_device
from posereg.paths import BENCH_DIR

GOAL = 0.97
WARMUP = 2
Batch = dict[str, Any]


class Repeat:
    """An epoch of `steps` pre-loaded batches (cycled): what both loops train on, with nothing to load."""

    def __init__(self, batches: Sequence[Batch], steps: int) -> None:
        self.batches, self.steps = list(batches), int(steps)

    def __iter__(self) -> Iterator[Batch]:
        return (self.batches[i % len(self.batches)] for i in range(self.steps))

    def __len__(self) -> int:
        return self.steps


class NullLogger(Logger):
    """A logger that keeps nothing: stands in for a removed one (the LR monitor refuses a trainer without any)."""

    @property
    def name(self) -> str:
        return "null"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Drop them."""

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Drop them."""


class _Clock(pl.Callback):
    """Wall time at the start of every training step from step WARMUP on and at the end of fit; process time."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.marks, self.cpu = device, [], [0.0, 0.0]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.global_step >= WARMUP:
            sync(self.device)
            self.marks.append(time.perf_counter())
            if len(self.marks) == 1:
                self.cpu[0] = time.process_time()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sync(self.device)
        self.marks.append(time.perf_counter())
        self.cpu[1] = time.process_time()

    def timing(self) -> dict[str, float]:
        """Per step: the median step-to-step time plus the end-of-epoch work spread over the steps."""
        return per_step([b - a for a, b in zip(self.marks, self.marks[1:], strict=False)], self.cpu[1] - self.cpu[0])


def per_step(intervals: list[float], cpu_s: float) -> dict[str, float]:
    """Seconds per step from the time of each step (the last one also holds the epoch's end): the median step,
    robust to bursts of other load on a shared machine, plus what the last one took beyond it, spread over all."""
    typical = statistics.median(intervals[:-1]) if len(intervals) > 1 else intervals[0]
    extra = max(0.0, intervals[-1] - typical)
    return {"s_per_step": typical + extra / len(intervals), "typical_s": typical, "epoch_end_s": extra,
            "cpu_s_per_step": cpu_s / len(intervals)}


def _fresh_module(work: Workload, state: dict[str, torch.Tensor]) -> pl.LightningModule:
    """The workload's module with its initial weights back (every loop starts from the same point)."""
    work.module.load_state_dict(state)
    work.module.train()
    return work.module


def time_plain(work: Workload, state: dict[str, torch.Tensor], batches: Sequence[Batch], steps: int) -> dict:
    """A plain PyTorch loop over the pre-loaded batches: seconds per step (wall, process)."""
    _fresh_module(work, state)
    opt = work.module.configure_optimizers()
    work.optimizer = opt["optimizer"] if isinstance(opt, dict) else opt
    it = iter(Repeat(batches, steps))
    for _ in range(WARMUP):
        work.step(next(it))
    cpu = time.process_time()
    intervals = time_calls(lambda: work.step(next(it)), steps - WARMUP, work.device)
    if len(intervals) == 1:  # a GPU block mean
        intervals = intervals * (steps - WARMUP)
    return per_step(intervals, time.process_time() - cpu)


def lightning_parts(cfg: DictConfig, run_dir: Path) -> tuple[list[tuple[str, pl.Callback]], list[tuple[str, Any]]]:
    """(name, callback) and (name, logger) pairs of a training run in `run_dir`, built as posereg.recipes.train does:
    `RunSession.callbacks()`, each entry of `cfg.callbacks` (as `instantiate_group`), the CSV and group loggers."""
    from posereg.config import instantiate, instantiate_group
    from posereg.runs import RunDir
    from posereg.training.lifecycle import RunSession
    from posereg.training.loggers import AppendingCSVLogger

    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
    session = RunSession(RunDir(run_dir), "fresh")
    callbacks = [(f"session: {type(c).__name__}", c) for c in session.callbacks() if c is not None]
    for name, node in (cfg.callbacks or {}).items():
        built = instantiate(node) if node is not None and "_target_" in node else None
        if built is not None:  # factories return None for a feature left off, as in instantiate_group
            callbacks.append((f"callbacks.{name}", built))
    loggers = [("csv logger", AppendingCSVLogger(run_dir)), *((f"logger: {type(lg).__name__}", lg)
                                                              for lg in instantiate_group(cfg.logger))]
    return callbacks, loggers


def time_lightning(work: Workload, cfg: DictConfig, state: dict[str, torch.Tensor], batches: Sequence[Batch],
                   steps: int, without: str | None = None, bare: bool = False) -> dict:
    """posereg's Lightning loop (or `bare`: no callbacks, no logger) over the pre-loaded batches, one epoch;
    `without` leaves one callback out, or swaps one logger for a NullLogger. Seconds per step (wall, process)."""
    from posereg.config import instantiate
    from posereg.training.plugins import SafeCheckpointIO

    module = _fresh_module(work, state)
    clock = _Clock(work.device)
    with tempfile.TemporaryDirectory(prefix="posereg-lightning-bench-") as tmp:
        callbacks, loggers = ([], []) if bare else lightning_parts(cfg, Path(tmp))
        callbacks = [c for n, c in callbacks if n != without]
        loggers = [lg if n != without else NullLogger() for n, lg in loggers]
        trainer: pl.Trainer = instantiate(
            cfg.trainer, callbacks=[*callbacks, clock], logger=loggers or False, default_root_dir=tmp,
            plugins=[SafeCheckpointIO(False)], enable_checkpointing=None if not bare else False,
            enable_progress_bar=any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks),
        )
        trainer.fit(module, train_dataloaders=Repeat(batches, steps))
    return clock.timing()


def _bench_cfg(cfg: DictConfig, steps: int) -> DictConfig:
    """One training epoch of `steps` steps, no validation, no time limit, on the workload's device."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.trainer.max_epochs, cfg.trainer.max_steps, cfg.trainer.max_time = 1, steps, None
        cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = None, 0
        cfg.trainer.num_sanity_val_steps = 0
    return cfg


def _batches(work: Workload, n: int) -> list[Batch]:
    """n distinct pre-loaded batches on the device, in the loader's order (taken in the main process)."""
    it = iter(work.loader(0))
    return [work.to_device(next(it)) for _ in range(n)]


def lightning_overhead(overrides: Sequence[str] = DEFAULT_PRESET, steps: int | None = None, rounds: int = 2,
                       profile: bool = True, device: str = "auto") -> dict[str, Any]:
    """Plain vs full Lightning loop (best of `rounds` interleaved), then the cost of each callback and logger."""
    dev = pick_device(device)
    cfg = compose_preset(overrides)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    work = Workload(cfg, dev)
    state = {k: v.clone() for k, v in work.module.state_dict().items()}
    work.warm_up()  # the weights are put back before each loop
    epoch = int(cfg.data.epoch_length or 0) // int(cfg.data.batch_size) if cfg.data.get("epoch_length") else 64
    steps = int(steps or epoch)
    cfg = _bench_cfg(cfg, steps)
    batches = _batches(work, 4)
    runs: dict[str, list[dict]] = {"plain": [], "lightning": []}
    for _ in range(rounds):  # interleaved, so that other load on the machine hits both alike
        runs["plain"].append(time_plain(work, state, batches, steps))
        runs["lightning"].append(time_lightning(work, cfg, state, batches, steps))
    best = {k: min(v, key=lambda r: r["s_per_step"]) for k, v in runs.items()}
    report: dict[str, Any] = {
        "overrides": list(overrides), "setup": describe_setup(cfg, dev), "steps": steps, "rounds": rounds,
        "preset_epoch_steps": epoch,
        "plain": best["plain"], "lightning": best["lightning"],
        "ratio": best["plain"]["s_per_step"] / best["lightning"]["s_per_step"],
        "cpu_ratio": best["plain"]["cpu_s_per_step"] / best["lightning"]["cpu_s_per_step"], "parts": [],
    }
    if profile:
        with tempfile.TemporaryDirectory() as tmp:
            callbacks, loggers = lightning_parts(cfg, Path(tmp))
        names = [n for n, _ in callbacks] + [n for n, _ in loggers]
        full = time_lightning(work, cfg, state, batches, steps)
        bare = time_lightning(work, cfg, state, batches, steps, bare=True)
        report["bare"], report["full_again"] = bare, full
        for name in names:
            without = time_lightning(work, cfg, state, batches, steps, without=name)
            report["parts"].append({"part": name, "s_per_step_without": without["s_per_step"],
                                    "cost": full["s_per_step"] / without["s_per_step"] - 1,
                                    "cpu_cost": full["cpu_s_per_step"] / without["cpu_s_per_step"] - 1})
    return report


def markdown(r: dict[str, Any]) -> str:
    """Markdown summary of a Lightning-overhead report."""
    s = r["setup"]
    lines = [
        f"# Lightning overhead: {' '.join(r['overrides'])}", "",
        f"{s['method']} + {s['backbone']}, {s['input_size']}² input, batch {s['batch_size']}, {s['precision']}; "
        f"{s['device']}, {s['cpu_cores']} cores, {s['torch_threads']} torch threads, torch {s['torch']}, load average "
        f"{s['load_average']} at the start. One epoch of {r['steps']} steps on 4 pre-loaded batches; per step: the "
        f"median step time from step {WARMUP + 1} on plus the epoch-end work spread over the steps; best of "
        f"{r['rounds']} interleaved rounds. Goal: Lightning steps/s / plain steps/s >= {GOAL}.", "",
        "| loop | ms per step (wall) | epoch-end work (ms) | CPU ms per step |", "|---|---|---|---|",
    ]
    rows = [("plain PyTorch", r["plain"]), ("posereg Lightning (callbacks, CSV, progress bar)", r["lightning"])]
    if "bare" in r:
        rows.append(("Lightning, no callbacks / logger", r["bare"]))
    for name, t in rows:
        lines.append(f"| {name} | {1000 * t['s_per_step']:.1f} | {1000 * t['epoch_end_s']:.0f} | "
                     f"{1000 * t['cpu_s_per_step']:.1f} |")
    lines += ["", f"Ratio (Lightning / plain steps/s): **{r['ratio']:.3f}** wall, {r['cpu_ratio']:.3f} CPU time."]
    epoch = r.get("preset_epoch_steps")
    if epoch and epoch != r["steps"]:
        def at(t: dict) -> float:
            return t["typical_s"] + t["epoch_end_s"] / epoch

        lines += ["", f"The bench's epochs have {r['steps']} steps, the preset's {epoch}: with the epoch-end work "
                  f"spread over {epoch} steps the ratio is **{at(r['plain']) / at(r['lightning']):.3f}**."]
    if r["parts"]:
        lines += ["", "Each part removed once from the full loop (cost = full / without - 1; single runs, so "
                  "differences under about 1 % are within the noise of this machine):", "",
                  "| part | ms per step without it | cost (wall) | cost (CPU) |", "|---|---|---|---|"]
        for p in r["parts"]:
            lines.append(f"| {p['part']} | {1000 * p['s_per_step_without']:.1f} | {100 * p['cost']:+.1f} % | "
                         f"{100 * p['cpu_cost']:+.1f} % |")
    return "\n".join(lines) + "\n"


def run_lightning_bench(quick: bool = False, overrides: Sequence[str] = DEFAULT_PRESET, steps: int | None = None,
                        rounds: int | None = None, profile: bool | None = None, device: str = "auto",
                        out_dir: str | Path | None = BENCH_DIR, tag: str = "lightning") -> dict[str, Any]:
    """The comparison, printed; `<out_dir>/<tag>.md|json` written (out_dir None: nothing written)."""
    report = lightning_overhead(overrides, steps or (6 if quick else None), rounds or (1 if quick else 2),
                               (not quick) if profile is None else profile, device)
    publish(report, markdown(report), out_dir, tag)
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line: python -m posereg.bench.lightning_overhead [--steps N] [--no-profile] [overrides ...]."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", default=list(DEFAULT_PRESET), help="Hydra overrides (a preset)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out-dir", default=str(BENCH_DIR))
    p.add_argument("--tag", default="lightning")
    a = p.parse_args(argv)
    run_lightning_bench(a.quick, a.overrides, a.steps, a.rounds, False if a.no_profile else None, a.device, a.out_dir,
                        a.tag)


if __name__ == "__main__":
    main()
