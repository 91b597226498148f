"""posereg-eval: re-evaluate a finished (or interrupted) run with the run's own saved config.

    posereg-eval run=runs/default/seed=0 [split=val|test] [ckpt=best|last|<file>] [key=value | group=option ...]

Overrides use Hydra's grammar and are checked against the run's config: an unknown key is refused (add a
new one with `+key=value`), and `data=<option>` style overrides replace that group with the option.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.cli.common import build_trainer, exit_2_on_bad_input, resolve_auto_cut, split_own_args
from posereg.console import print_metrics
from posereg.errors import ConfigError
from posereg.jsonio import to_jsonable, write_json
from posereg.paths import CONF_DIR
from posereg.runs import RunDir, register_resolvers
from posereg.runs.checkpoints import SafeCheckpointIO

USAGE = ("posereg-eval run=<run dir> [split=val|test] [ckpt=best|last|<file>] [flip_test=true] [data=<option>] "
         "[key=value ...]")
_MISSING = object()


def load_run_config(run_path: Path) -> DictConfig:
    """The composed config saved in the run directory."""
    file = RunDir(run_path).config_file
    if not file.is_file():
        raise ConfigError(f"run={run_path}: no .hydra/config.yaml there (is it a posereg run directory?)")
    return OmegaConf.load(file)


def _group_node(group: str, option: str) -> DictConfig:
    """One config group option composed on its own (for `data=<option>` style overrides)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[f"{group}={option}"])[group]


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply Hydra-syntax overrides onto a saved config; unknown keys are refused unless added with `+`."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"cannot parse the overrides {overrides}: {first}; usage: {USAGE}") from None
    for o in parsed:
        key = o.key_or_group
        if o.is_delete() or o.is_sweep_override():
            raise ConfigError(f"override {o.input_line!r}: posereg-eval takes one value per key")
        with open_dict(cfg):
            if key in groups and key in cfg and o.package is None and isinstance(o.value(), str):
                cfg[key] = _group_node(key, o.value())
            elif o.is_add() or OmegaConf.select(cfg, key, default=_MISSING) is not _MISSING:
                OmegaConf.update(cfg, key, o.value(), force_add=True)
            else:
                raise ConfigError(f"{key} is not a setting of this run's config (a typo?); add a new key with "
                                  f"+{key}=..., see the run's .hydra/config.yaml")
    return cfg


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
    from posereg.methods.initial_weights import without_initial_weights

    if split not in ("val", "test"):
        raise ConfigError(f"split={split}: choose val or test")
    run = RunDir(run_path)
    register_resolvers()
    cfg = apply_overrides(load_run_config(run.path), list(overrides or []))
    with open_dict(cfg):
        cfg.paths.run_dir = str(run.path)
    checkpoint = pick_checkpoint(run, ckpt)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    resolve_auto_cut(cfg, datamodule.info)
    model = build_module(without_initial_weights(cfg), datamodule.info)  # the checkpoint holds every weight
    trainer: pl.Trainer = build_trainer(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False,
                                      enable_progress_bar=True, enable_model_summary=False,
                                      plugins=[SafeCheckpointIO(bool(cfg.trust_checkpoints))])
    runner = trainer.validate if split == "val" else trainer.test
    results = runner(model, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False)
    scalars = {k: float(v) for part in results for k, v in part.items()}
    out = {"split": split, "checkpoint": str(checkpoint), "overrides": list(overrides or []), "metrics": scalars,
           "extras": to_jsonable(getattr(model, "final_extras", {}) or {})}
    if trainer.is_global_zero:  # under DDP every rank evaluates its share; one writes and prints
        write_json(run.path / f"eval_{split}.json", out)
        print_metrics({"final": scalars}, title=f"eval {split}: {run.path}")
    return out


def parse_args(argv: list[str] | None) -> tuple[Path, str, str, list[str]]:
    """Split `run=`, `split=`, `ckpt=` from the config overrides."""
    parser = argparse.ArgumentParser(prog="posereg-eval", usage=USAGE, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="run=<dir> split=val|test ckpt=best|last and key=value overrides")
    args = parser.parse_args(argv)
    try:
        found, rest = split_own_args(args.items, {"run": None, "split": "val", "ckpt": "best"})
    except ConfigError as err:
        parser.error(str(err))
    return Path(found["run"]), found["split"], found["ckpt"], rest


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-eval)."""
    run, split, ckpt, overrides = parse_args(argv)
    exit_2_on_bad_input(evaluate, run, split=split, ckpt=ckpt, overrides=overrides)


if __name__ == "__main__":
    main()
