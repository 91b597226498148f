"""Experiment loggers: CSV always, TensorBoard and W&B on request, W&B offline without credentials."""

from __future__ import annotations

import netrc
import os
import secrets
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from omegaconf import DictConfig

from posereg.runs import RunDir


def wandb_has_credentials() -> bool:
    """True when W&B could log in without asking (API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def wandb_mode(requested: str) -> str:
    """Resolve 'auto' to online or offline; an explicit WANDB_MODE in the environment wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested in ("online", "offline", "disabled"):
        return requested
    return "online" if wandb_has_credentials() else "offline"


def wandb_run_id(run: RunDir) -> str:
    """The W&B run id of this run directory, created once and reused on resume."""
    if run.wandb_id_file.exists():
        return run.wandb_id_file.read_text().strip()
    run_id = secrets.token_hex(4)
    run.path.mkdir(parents=True, exist_ok=True)
    run.wandb_id_file.write_text(run_id + "\n")
    return run_id


def build_loggers(cfg: DictConfig, run: RunDir, flat_config: dict[str, Any]) -> list[Logger]:
    """CSV logger in <run>/csv plus the dashboards the logger group enables."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(run.path), name="csv", version="")]
    log_cfg = cfg.logger
    if log_cfg.get("tensorboard"):
        # default_hp_metric=False: hparams are logged with the real metrics at the end (HParams tab)
        loggers.append(
            TensorBoardLogger(save_dir=str(run.path), name="tensorboard", version="", default_hp_metric=False)
        )
    if log_cfg.get("wandb"):
        loggers.append(_wandb_logger(cfg, run, flat_config))
    return loggers


def _wandb_logger(cfg: DictConfig, run: RunDir, flat_config: dict[str, Any]) -> Logger:
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode(str(cfg.logger.get("wandb_mode", "auto")))
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    (run.path / "wandb").mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        project=cfg.logger.get("wandb_project", "posereg"),
        entity=cfg.logger.get("wandb_entity"),
        group=str(cfg.experiment_name),
        name=run.path.name,
        id=wandb_run_id(run),
        resume="allow",
        save_dir=str(run.path),
        mode=mode,
        config=flat_config,
        log_model="all" if (mode == "online" and cfg.logger.get("wandb_log_checkpoints")) else False,
    )
    if mode == "offline":
        print(f"W&B is offline (no credentials); sync later with: wandb sync {run.path / 'wandb'}")
    return logger


def restore_from_wandb(reference: str, dest: Path) -> tuple[Path, Path]:
    """Download a W&B run's config and latest checkpoint artifact: resume=wandb:<entity/project/run_id>."""
    import wandb

    api = wandb.Api()
    remote = api.run(reference)
    dest.mkdir(parents=True, exist_ok=True)
    config_file = dest / "wandb_config.yaml"
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create(dict(remote.config)), config_file)
    artifacts = [a for a in remote.logged_artifacts() if a.type == "model"]
    if not artifacts:
        raise FileNotFoundError(f"W&B run {reference} has no model checkpoint artifact")
    ckpt_dir = Path(artifacts[-1].download(root=str(dest / "checkpoints")))
    ckpts = sorted(ckpt_dir.glob("*.ckpt"))
    if not ckpts:
        raise FileNotFoundError(f"W&B artifact of {reference} holds no .ckpt file")
    return config_file, ckpts[-1]


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """Dotted-key view of the resolved config, for dashboards' hparams and grouping."""
    from omegaconf import OmegaConf

    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, list):
            out[prefix] = str(node)
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "")
    return out
