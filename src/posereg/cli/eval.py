"""posereg-eval: re-evaluate a finished (or interrupted) run with the run's own saved config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.console import console, print_metrics
from posereg.errors import ConfigError
from posereg.paths import CONF_DIR
from posereg.runs import RunDir, register_resolvers

GROUPS = ("data", "backbone", "method", "trainer", "logger", "callbacks")
USAGE = (
    "posereg-eval run=<run dir> [split=val|test] [ckpt=best|last|<file>] [flip_test=true] [data=<name>] [key=value ...]"
)


def load_run_config(run_path: Path) -> DictConfig:
    """The composed config saved by Hydra in the run directory."""
    file = run_path / ".hydra" / "config.yaml"
    if not file.is_file():
        raise ConfigError(f"run={run_path}: no .hydra/config.yaml there (is it a posereg run directory?)")
    return OmegaConf.load(file)


def _group_node(group: str, option: str) -> DictConfig:
    """Compose one config group option on its own (for `data=<name>` style overrides)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose(config_name="config", overrides=[f"{group}={option}"])
    return composed[group]


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply `group=option` and `dotted.key=value` overrides onto a saved config."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value; usage: {USAGE}")
        key, raw = item.split("=", 1)
        key = key.lstrip("+")
        with open_dict(cfg):
            if key in GROUPS:
                cfg[key] = _group_node(key, raw)
            else:
                OmegaConf.update(cfg, key, _parse_scalar(raw), force_add=True)
    return cfg


def _parse_scalar(raw: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def pick_checkpoint(run: RunDir, which: str) -> Path:
    """best.ckpt (default, falling back to last.ckpt), last.ckpt, or an explicit file."""
    if which == "best":
        ckpt = run.best_ckpt if run.best_ckpt.exists() else run.last_ckpt
    elif which == "last":
        ckpt = run.last_ckpt
    else:
        ckpt = Path(which)
    if not ckpt.is_file():
        raise ConfigError(f"no checkpoint {ckpt}: train the run first, or pass ckpt=<file>")
    return ckpt


def evaluate(run_path: Path, split: str = "val", ckpt: str = "best", overrides: list[str] | None = None) -> dict:
    """Evaluate a run directory on a split and write eval_<split>.json beside it."""
    from posereg.data import build_datamodule
    from posereg.methods import build_module

    if split not in ("val", "test"):
        raise ConfigError(f"split={split}: choose val or test")
    run = RunDir(run_path)
    cfg = apply_overrides(load_run_config(run.path), list(overrides or []))
    checkpoint = pick_checkpoint(run, ckpt)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_module(cfg, datamodule.info)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.get("accelerator", "cpu"),
        devices=cfg.trainer.get("devices", 1),
        precision=cfg.trainer.get("precision", "32-true"),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=True,
        enable_model_summary=False,
        limit_val_batches=cfg.trainer.get("limit_val_batches"),
        limit_test_batches=cfg.trainer.get("limit_test_batches"),
    )
    runner = trainer.validate if split == "val" else trainer.test
    results = runner(model, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False, weights_only=False)
    scalars = {k: float(v) for part in results for k, v in part.items()}
    extras = getattr(model, "final_extras", {}) or {}
    out = {
        "split": split,
        "checkpoint": str(checkpoint),
        "overrides": list(overrides or []),
        "metrics": scalars,
        "extras": json.loads(json.dumps(extras, default=lambda t: t.tolist() if hasattr(t, "tolist") else str(t))),
    }
    (run.path / f"eval_{split}.json").write_text(json.dumps(out, indent=2) + "\n")
    print_metrics({"final": scalars}, title=f"eval {split}: {run.path}")
    return out


def parse_args(argv: list[str] | None) -> tuple[Path, str, str, list[str]]:
    """Split `run=`, `split=`, `ckpt=` from the config overrides."""
    parser = argparse.ArgumentParser(prog="posereg-eval", usage=USAGE, description=__doc__)
    parser.add_argument("items", nargs="*", help="run=<dir> split=val|test ckpt=best|last and key=value overrides")
    args = parser.parse_args(argv)
    run, split, ckpt, rest = None, "val", "best", []
    for item in args.items:
        key, _, value = item.partition("=")
        if key == "run":
            run = Path(value)
        elif key == "split":
            split = value
        elif key == "ckpt":
            ckpt = value
        else:
            rest.append(item)
    if run is None:
        parser.error("run=<run dir> is required")
    return run, split, ckpt, rest


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-eval)."""
    run, split, ckpt, overrides = parse_args(argv)
    try:
        evaluate(run, split=split, ckpt=ckpt, overrides=overrides)
    except ConfigError as err:
        console.print(f"[bold red]error[/bold red]: {err}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
