"""Evaluating an opened run, the recipe of posereg-eval and `posereg.evaluate`: Lightning's validate or test
with the run's config and checkpoint; eval_<split>.json beside the run."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from posereg.console import print_metrics
from posereg.data import build_datamodule
from posereg.jsonio import to_jsonable, write_json
from posereg.methods import build_module
from posereg.methods.initial_weights import without_initial_weights
from posereg.recipes.common import build_trainer, check_checkpoint_fits, resolve_auto_cut
from posereg.runs.open import OpenedRun
from posereg.training.plugins import SafeCheckpointIO


def evaluate_opened(opened: OpenedRun, split: str, overrides: list[str]) -> dict[str, Any]:
    """The recipe: seed, data, the module with the checkpoint, Lightning's validate or test; eval_<split>.json."""
    cfg, checkpoint, run = opened.cfg, opened.checkpoint, opened.run
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    resolve_auto_cut(cfg, datamodule.info)
    model = build_module(without_initial_weights(cfg), datamodule.info)  # the checkpoint holds every weight
    trainer: pl.Trainer = build_trainer(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False,
                                        enable_progress_bar=True, enable_model_summary=False,
                                        plugins=[SafeCheckpointIO(opened.trust)])
    check_checkpoint_fits(model, checkpoint, opened.trust, fix="evaluate another checkpoint with ckpt=best|last|<file>")
    runner = trainer.validate if split == "val" else trainer.test
    results = runner(model, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False)
    scalars = {k: float(v) for part in results for k, v in part.items()}
    out = {"split": split, "checkpoint": str(checkpoint), "overrides": list(overrides), "metrics": scalars,
           "extras": to_jsonable(getattr(model, "final_extras", {}) or {})}
    if trainer.is_global_zero:  # under DDP every rank evaluates its share; one writes and prints
        write_json(run.path / f"eval_{split}.json", out)
        print_metrics({"final": scalars}, title=f"eval {split}: {run.path}")
    return out
