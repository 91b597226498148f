"""Evaluating a finished (or interrupted) run with its own saved config and other settings, as posereg-eval does.

    metrics = posereg.evaluate("runs/default/seed=0", split="test", flip_test=False)
    metrics["metrics"]["test/pckh@0.5"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posereg.errors import ConfigError
from posereg.runs.open import open_run

SPLITS = ("val", "test")


def settings_overrides(settings: dict[str, Any]) -> list[str]:
    """Keyword settings (`flip_test=False`, `cut="p1l2"`) as Hydra overrides (`flip_test=false`, `cut=p1l2`)."""
    def text(value: Any) -> str:
        if value is None:
            return "null"
        return str(value).lower() if isinstance(value, bool) else str(value)

    return [f"{key}={text(value)}" for key, value in settings.items()]


def evaluate(run: str | Path, split: str = "val", ckpt: str = "best", overrides: list[str] | tuple[str, ...] = (),
             **settings: Any) -> dict[str, Any]:
    """Evaluate a run directory on a split with its own config plus `overrides` (Hydra's grammar) and keyword
    `settings` (e.g. flip_test=False); writes eval_<split>.json beside the run and returns its content."""
    if split not in SPLITS:
        raise ConfigError(f"split={split}: choose val or test")
    overrides = [*overrides, *settings_overrides(settings)]
    opened = open_run(run, ckpt, overrides)  # the run's config with the overrides, checked
    # the one deferred import: torch, Lightning and timm load only once the run and its settings are good
    from posereg.recipes.evaluate import evaluate_opened

    return evaluate_opened(opened, split, overrides)
