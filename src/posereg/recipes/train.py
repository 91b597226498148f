"""Training a run, the recipe of posereg-train and `posereg.train`.

The recipe (`fit_and_test`) reads top to bottom: seed, data, model, callbacks, loggers, trainer; fit; test;
metrics. What re-running does to the run directory (skip, resume, retry, fresh, locks, status, exit codes,
the model card) is the run lifecycle's job (`posereg.training.lifecycle`). Re-running continues a run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from posereg.config import instantiate_group
from posereg.console import console, network_backbone, print_metrics, print_run_summary
from posereg.data import build_datamodule
from posereg.devices import device_model
from posereg.inference.boxes import box_padding
from posereg.inference.export import ExportedPose, description
from posereg.methods import build_module
from posereg.methods.initial_weights import fetch_pretrained, without_initial_weights
from posereg.nets.complexity import Complexity, model_complexity
from posereg.recipes.common import (
    build_trainer,
    check_checkpoint_fits,
    check_run_settings,
    load_init_weights,
    resolve_auto_cut,
)
from posereg.runs import RunMetrics, register_resolvers
from posereg.runs.keys import defines_run, override_key
from posereg.training.lifecycle import RunSession, run_lifecycle
from posereg.training.loggers import AppendingCSVLogger
from posereg.training.plugins import SafeCheckpointIO, cluster_plugins
from posereg.training.watchdog import cell_watchdog

register_resolvers()


def fit_and_test(cfg: DictConfig, session: RunSession, extra_callbacks: list[pl.Callback] | None = None
                 ) -> RunMetrics | None:
    """The recipe: seed, data, model, callbacks, loggers, trainer; fit; test; the run's metrics.json."""
    check_run_settings(cfg)
    resuming = session.resume_from is not None
    if not resuming:  # before the data; offline: one line, and no run directory left behind
        fetch_pretrained(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    datamodule = build_datamodule(cfg)
    resolve_auto_cut(cfg, datamodule.info)
    # a resumed run's checkpoint holds every weight: its initial ones are neither downloaded nor read again
    model = build_module(without_initial_weights(cfg) if resuming else cfg, datamodule.info)
    if cfg.init_from and session.resume_from is None:
        load_init_weights(model, str(cfg.init_from), float(cfg.init_from_min_fraction), session.trust_checkpoints)
    callbacks = session.callbacks() + instantiate_group(cfg.callbacks) + list(extra_callbacks or [])
    loggers = [AppendingCSVLogger(session.run.path), *instantiate_group(cfg.logger)]
    trainer: pl.Trainer = build_trainer(
        cfg.trainer, callbacks=callbacks, logger=loggers, default_root_dir=str(session.run.path),
        plugins=[SafeCheckpointIO(session.trust_checkpoints), *cluster_plugins()],
        enable_progress_bar=any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks),
    )
    complexity = model_complexity(model.net, datamodule.info.input_size, cut=model.cut.stop)
    if session.owner:
        print_run_summary(cfg, session.run.path, complexity)
    if session.resume_from is not None:
        check_checkpoint_fits(model, session.resume_from, session.trust_checkpoints,
                              fix="move it aside to resume from the other checkpoint, or re-run with force=true "
                                  "to start again")
    session.training_started = True
    trainer.fit(model, datamodule=datamodule, ckpt_path=session.resume_from)
    if trainer.interrupted:
        return None
    test: dict[str, float] = {}
    if cfg.test_after_fit and cfg.trainer.get("limit_test_batches") != 0:
        best = session.run.best_ckpt if session.run.best_ckpt.exists() else None
        test = {k: float(v) for part in trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
                for k, v in part.items()}
    session.interface = {**description(ExportedPose(model), datamodule.info.joint_set, "onnx"),  # the model card's
                         "box_padding": box_padding(cfg)}
    metrics = run_metrics(cfg, trainer, session, model, test, complexity)
    log_hparams(loggers, session.overrides, metrics)
    if session.owner:
        title = f"{cfg.experiment_name} / {session.run.path.name}"
        if metrics.setup.get("stopped_by"):
            title += f" — {metrics.setup['stopped_by']}"
        print_metrics(metrics.to_json(), title=title)
    return metrics


def time_guard_stop(cfg: DictConfig, trainer: pl.Trainer) -> str | None:
    """The line a run carries when `trainer.max_time` ended its training before the recipe's epochs and steps,
    else None: its numbers are then the machine's speed as much as the recipe's."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    max_steps = int(cfg.trainer.get("max_steps") or -1)
    finished = trainer.current_epoch >= int(cfg.trainer.max_epochs) or 0 < max_steps <= trainer.global_step
    if timer is None or finished or (timer.time_remaining("train") or 0.0) > 0:
        return None
    return (f"stopped by the time guard (trainer.max_time={cfg.trainer.max_time}) after {trainer.global_step} "
            "steps; not the recipe's result")


def run_metrics(cfg: DictConfig, trainer: pl.Trainer, session: RunSession, module: Any, test: dict,
                complexity: Complexity) -> RunMetrics:
    """metrics.json of a trained run: final / best validation rows, test metrics, what was trained (setup), the
    network's complexity and the extras."""
    history = session.history
    best = history.best()
    data = cfg.data
    device = f"{trainer.accelerator.__class__.__name__.replace('Accelerator', '')} x{trainer.world_size}"
    return RunMetrics(
        final={k: v for k, v in history.final().items() if k not in ("epoch", "step")},
        best={k: v for k, v in best.items() if k not in ("epoch", "step")},
        test=test,
        monitor=history.monitor,
        monitor_mode=history.mode,
        best_epoch=best.get("epoch"),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        setup={
            "method": cfg.method.name, "data": list(data.sources), "joint_set": data.joint_set,
            "backbone": network_backbone(cfg), "input_size": data.input_size,
            "batch_size": data.batch_size, "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "seed": int(cfg.seed), "device": device, "device_model": device_model(trainer.strategy.root_device),
            "precision": str(trainer.precision), "torch_threads": torch.get_num_threads(),
            "budget_scale": int(cfg.get("budget_scale", 1)), "stopped_by": time_guard_stop(cfg, trainer),
        },
        complexity={"params": complexity.params, "params_m": complexity.params / 1e6, "macs": complexity.macs,
                    "gmacs": complexity.gmacs, "input_size": list(complexity.input_hw)},
        extras=getattr(module, "final_extras", {}) or {},
    )


def log_hparams(loggers: list, overrides: list[str], metrics: RunMetrics) -> None:
    """Give TensorBoard's HParams tab the run's defining settings and its final metrics."""
    scalars = {f"hp/{k}": v for k, v in {**metrics.best, **metrics.test}.items()}
    hparams = {k: v for k, v in metrics.setup.items() if isinstance(v, int | float | str)}
    for line in overrides:
        if defines_run(override_key(line)):
            hparams[override_key(line)] = line.split("=", 1)[-1]
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and scalars:
            logger.log_hyperparams(hparams, metrics=scalars)


def train_task(
    cfg: DictConfig,
    run_path: str | Path | None = None,
    overrides: list[str] | None = None,
    extra_callbacks: list[pl.Callback] | None = None,
    multirun: bool | None = None,
) -> dict | None:
    """Train (or resume, or skip) one run; returns its metrics.json content (None when nothing finished)."""
    if run_path is None:
        hc = HydraConfig.get()
        run_path = Path(hc.runtime.output_dir)
        overrides = list(hc.overrides.task) if overrides is None else overrides
        multirun = hc.mode == RunMode.MULTIRUN if multirun is None else multirun
    if multirun and os.environ.get("POSEREG_SWEEP_CELLS") and HydraConfig.initialized():
        console.print(f"[bold]cell {HydraConfig.get().job.num + 1}/{os.environ['POSEREG_SWEEP_CELLS']}[/bold] "
                      f"{Path(run_path).name}")
    with cell_watchdog() as watchdog:  # under posereg-sweep: the cell ends when the sweep dies
        callbacks = [*(extra_callbacks or []), *(watchdog.callbacks() if watchdog else [])]
        with run_lifecycle(cfg, Path(run_path), list(overrides or []), bool(multirun)) as session:
            if not session.skipped:
                session.metrics = fit_and_test(cfg, session, callbacks)
    return session.metrics.to_json() if session.metrics else None
