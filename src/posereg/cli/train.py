"""posereg-train: the Hydra training app. Re-running a command continues its run directory."""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.callbacks import (
    InterruptCheckpoint,
    MetricHistory,
    NanGuard,
    NonFiniteLossError,
    RngState,
    is_interruption,
)
from posereg.console import console, print_config, print_metrics
from posereg.data.resumable import BatchPositionTracker
from posereg.errors import ConfigError, DataError
from posereg.loggers import build_loggers, flatten_config, restore_from_wandb
from posereg.paths import CONF_DIR
from posereg.runs import RunDir, decide_action, register_resolvers

register_resolvers()


def build_callbacks(cfg: DictConfig, run: RunDir, monitor: str | None, mode: str) -> list[pl.Callback]:
    """Checkpointing (best + last), resume bookkeeping, NaN guard, progress bar and extras."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    cb_cfg = cfg.callbacks

    def last_checkpoint(**trigger: int) -> ModelCheckpoint:
        # a top-1 checkpoint without monitor is "the latest"; save_last alone only writes last.ckpt when
        # another checkpoint was saved in the same step, i.e. never for a run without best.ckpt
        return ModelCheckpoint(dirpath=str(run.checkpoint_dir), filename="last", save_top_k=1,
                               enable_version_counter=False, **trigger)

    callbacks: list[pl.Callback] = [
        BatchPositionTracker(),  # first: an interruption in a later callback still sees the position
        last_checkpoint(every_n_epochs=1),
        NanGuard(),
        InterruptCheckpoint(run.last_ckpt),
        RngState(),
        MetricHistory(monitor, mode),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if cb_cfg.get("checkpoint_every_n_steps"):
        callbacks.append(last_checkpoint(every_n_train_steps=int(cb_cfg.checkpoint_every_n_steps)))
    if monitor and cb_cfg.get("save_best", True):
        callbacks.append(
            ModelCheckpoint(
                dirpath=str(run.checkpoint_dir),
                filename="best",
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                enable_version_counter=False,
                auto_insert_metric_name=False,
            )
        )
    if cb_cfg.get("early_stopping_patience"):
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(cb_cfg.early_stopping_patience)))
    bar = cb_cfg.get("progress_bar", "rich")
    if bar == "rich":
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    elif bar == "tqdm":
        from lightning.pytorch.callbacks import TQDMProgressBar

        callbacks.append(TQDMProgressBar())
    for extra in (cb_cfg.get("extra") or {}).values():
        if extra is not None:
            callbacks.append(hydra.utils.instantiate(extra))
    return callbacks


def build_trainer(cfg: DictConfig, run: RunDir, callbacks: list[pl.Callback], loggers: list) -> pl.Trainer:
    """The Lightning Trainer from the trainer group."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return pl.Trainer(
        **kwargs,
        default_root_dir=str(run.path),
        logger=loggers,
        callbacks=callbacks,
        enable_progress_bar=cfg.callbacks.get("progress_bar", "rich") not in (None, "none", False),
    )


def load_init_weights(model: torch.nn.Module, path: str) -> None:
    """Load weights only (fine-tuning); optimizer, epoch and step start fresh."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"init_from={path}: no such checkpoint file")
    state = torch.load(file, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    model.load_state_dict(usable, strict=False)
    console.print(f"init_from: loaded {len(usable)} tensors from {file} ({len(skipped)} skipped: shape/name)")


def _apply_wandb_resume(cfg: DictConfig, run: RunDir) -> Path | None:
    """resume=wandb:<entity/project/run_id>: take that run's config values and last checkpoint."""
    reference = str(cfg.resume)
    if not reference.startswith("wandb:"):
        return None
    config_file, ckpt = restore_from_wandb(reference[len("wandb:") :], run.path / "wandb_restore")
    remote = OmegaConf.load(config_file)
    with open_dict(cfg):
        for key, value in remote.items():
            if OmegaConf.select(cfg, str(key), default=None) is not None:
                OmegaConf.update(cfg, str(key), value, force_add=False)
    return ckpt


def _collect_metrics(trainer: pl.Trainer, history: MetricHistory, module: Any, test: dict | None) -> dict:
    extras = getattr(module, "final_extras", {}) or {}
    best = history.best()
    return {
        "final": {k: v for k, v in history.final().items() if k not in ("epoch", "step")},
        "best": {k: v for k, v in best.items() if k not in ("epoch", "step")},
        "test": test or {},
        "monitor": history.monitor,
        "monitor_mode": history.mode,
        "best_epoch": best.get("epoch"),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "extras": {k: _jsonable(v) for k, v in extras.items()},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _scalars(results: list[dict] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in results or []:
        for key, value in part.items():
            out[key] = float(value)
    return out


def _hydra_context() -> tuple[Path, list[str], bool]:
    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task), hc.mode == RunMode.MULTIRUN


def train_task(
    cfg: DictConfig,
    run_path: str | Path | None = None,
    overrides: list[str] | None = None,
    extra_callbacks: list[pl.Callback] | None = None,
    multirun: bool | None = None,
) -> dict | None:
    """Train (or resume, or skip) one run; returns its metrics.json content."""
    if run_path is None:
        path, hydra_overrides, is_multi = _hydra_context()
        run_path, overrides = path, overrides if overrides is not None else hydra_overrides
        multirun = is_multi if multirun is None else multirun
    run = RunDir(Path(run_path))
    overrides = overrides or []
    status = run.read_status()
    action = decide_action(
        status,
        force=bool(cfg.force),
        retry_failed=bool(cfg.get("retry_failed", True)),
        has_checkpoint=run.last_ckpt.exists() and str(cfg.resume).lower() != "false",
    )
    if action == "skip":
        console.print(f"[green]done already[/green]: {run.path} (force=true re-runs it)")
        return run.read_metrics()
    if action == "skip_failed":
        console.print(f"[red]failed before, not retried[/red] (retry_failed=false): {run.path}")
        return None
    if action == "fresh" and status.get("status") != "pending":
        for leftover in (run.checkpoint_dir, run.path / "csv", run.path / "tensorboard", run.metrics_file):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
    ckpt_path = str(run.last_ckpt) if action == "resume" else None
    run.mark_running(str(cfg.experiment_name), overrides, resumed_from=ckpt_path)
    if ckpt_path:
        console.print(f"[cyan]resuming[/cyan] {run.path} from {ckpt_path}")
    trainer: pl.Trainer | None = None
    try:
        wandb_ckpt = _apply_wandb_resume(cfg, run)
        ckpt_path = str(wandb_ckpt) if wandb_ckpt else ckpt_path
        metrics = _fit_and_test(cfg, run, ckpt_path, extra_callbacks or [])
        trainer = metrics.pop("_trainer")
    except (ConfigError, DataError) as err:
        run.mark_finished("failed", error=f"{type(err).__name__}: {err}")
        console.print(f"[bold red]error[/bold red]: {err}")
        if multirun:
            return None
        raise SystemExit(2) from None
    except NonFiniteLossError as err:
        run.mark_finished("failed", error=str(err), failed_step=err.step)
        console.print(f"[bold red]stopped[/bold red]: {err}; last.ckpt from before it is kept")
        if multirun:
            return None
        raise SystemExit(3) from None
    except BaseException as err:  # noqa: BLE001 - status must say what happened, whatever it was
        if is_interruption(err) or isinstance(err, SystemExit):
            run.mark_finished("interrupted", error=type(err).__name__)
            console.print(f"[yellow]interrupted[/yellow]: re-run the same command to resume {run.path}")
            raise
        run.mark_finished("failed", error="".join(traceback.format_exception_only(type(err), err)).strip())
        if multirun:
            traceback.print_exc()
            return None
        raise
    if trainer is not None and trainer.interrupted:
        run.mark_finished("interrupted", error="interrupted")
        return metrics
    run.write_metrics(metrics)
    run.mark_finished("done")
    print_metrics(metrics, title=f"{cfg.experiment_name} / {run.path.name}")
    return metrics


def _fit_and_test(cfg: DictConfig, run: RunDir, ckpt_path: str | None, extra: list[pl.Callback]) -> dict:
    """The recipe: data, model, callbacks, loggers, trainer; fit; test; collect metrics."""
    from posereg.data import build_datamodule
    from posereg.methods import build_module

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    print_config(cfg)
    datamodule = build_datamodule(cfg)
    model = build_module(cfg, datamodule.info)
    if cfg.get("init_from") and not ckpt_path:
        load_init_weights(model, str(cfg.init_from))
    monitor = cfg.data.get("monitor")
    mode = cfg.data.get("monitor_mode", "max")
    callbacks = build_callbacks(cfg, run, monitor, mode) + list(extra)
    flat = flatten_config(cfg)
    loggers = build_loggers(cfg, run, flat)
    trainer = build_trainer(cfg, run, callbacks, loggers)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    history = next(cb for cb in callbacks if isinstance(cb, MetricHistory))
    test_metrics: dict[str, float] = {}
    if trainer.interrupted:
        return {"_trainer": trainer}
    if cfg.get("test_after_fit", True) and cfg.trainer.get("limit_test_batches") != 0:
        best = run.best_ckpt if run.best_ckpt.exists() else None
        test_metrics = _scalars(
            trainer.test(model, datamodule=datamodule, ckpt_path=str(best) if best else None, weights_only=False)
        )
    metrics = _collect_metrics(trainer, history, model, test_metrics)
    _log_hparams(loggers, flat, metrics)
    metrics["_trainer"] = trainer
    return metrics


def _log_hparams(loggers: list, flat: dict[str, Any], metrics: dict) -> None:
    """Give TensorBoard's HParams tab the config and the final metrics of the run."""
    from lightning.pytorch.loggers import TensorBoardLogger

    scalars = {f"hp/{k}": v for k, v in {**metrics["best"], **metrics["test"]}.items()}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and scalars:
            simple = {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}
            logger.log_hyperparams(simple, metrics=scalars)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    metrics = train_task(cfg)
    if not metrics:
        return None
    monitor = metrics.get("monitor")
    return (metrics.get("best") or {}).get(monitor) if monitor else None


def main() -> None:
    """Console entry point (posereg-train)."""
    _hydra_main()


if __name__ == "__main__":
    main()
