"""posereg-eval: re-evaluate a finished (or interrupted) run with the run's own saved config.

    posereg-eval run=runs/default/seed=0 [split=val|test] [ckpt=best|last|<file>] [key=value | group=option ...]

Overrides use Hydra's grammar and are checked against the run's config: an unknown key is refused (add a
new one with `+key=value`), and `data=<option>` style overrides replace that group with the option.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl

from posereg.cli.common import build_trainer, exit_2_on_bad_input, resolve_auto_cut, split_own_args
from posereg.console import print_metrics
from posereg.data import build_datamodule
from posereg.errors import ConfigError
from posereg.jsonio import to_jsonable, write_json
from posereg.methods import build_module
from posereg.methods.initial_weights import without_initial_weights
from posereg.runs.open import open_run
from posereg.training.plugins import SafeCheckpointIO

USAGE = ("posereg-eval run=<run dir> [split=val|test] [ckpt=best|last|<file>] [flip_test=true] [data=<option>] "
         "[key=value ...]")


def evaluate(run_path: Path, split: str = "val", ckpt: str = "best", overrides: list[str] | None = None) -> dict:
    """Evaluate a run directory on a split and write eval_<split>.json beside it."""
    if split not in ("val", "test"):
        raise ConfigError(f"split={split}: choose val or test")
    opened = open_run(run_path, ckpt, list(overrides or []))
    cfg, checkpoint, run = opened.cfg, opened.checkpoint, opened.run
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    resolve_auto_cut(cfg, datamodule.info)
    model = build_module(without_initial_weights(cfg), datamodule.info)  # the checkpoint holds every weight
    trainer: pl.Trainer = build_trainer(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False,
                                      enable_progress_bar=True, enable_model_summary=False,
                                      plugins=[SafeCheckpointIO(opened.trust)])
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
