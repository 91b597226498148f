"""Loading a finished run for prediction: `posereg.load(run)` -> a PoseModel (`posereg.recipes.predict`).

    model = posereg.load("runs/default/seed=0")
    result = model.predict(image)          # result.joints_2d (N,J,2) image pixels, result.scores (N,)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posereg.api.evaluate import settings_overrides
from posereg.errors import require_int
from posereg.inference.inputs import parse_camera
from posereg.runs.open import OpenedRun, open_run

if TYPE_CHECKING:
    from posereg.recipes.predict import PoseModel


def load(run: str | Path, ckpt: str = "best", device: str | None = None, batch_size: int = 32,
         camera: str | Sequence[float] | None = None, overrides: list[str] | tuple[str, ...] = (),
         **settings: Any) -> PoseModel:
    """A run directory's network with its checkpoint (`ckpt`: best, last or a file), its joint set and its cut,
    ready to predict on `device` (default: cuda when there is one). `camera` "fx,fy,cx,cy" (image pixels) for
    3D in the camera frame; `overrides` (Hydra's grammar) and keyword `settings` (e.g. flip_test=False) change
    the run's config as posereg-predict's do. The predicting output is the run's cut: the last stage of a
    multi-stage network unless `cut=` says otherwise."""
    batch = require_int(batch_size, "batch_size", 1)
    intrinsics = parse_camera(camera if camera is None or isinstance(camera, str) else ",".join(map(str, camera)))
    opened = open_run(run, ckpt, [*overrides, *settings_overrides(settings)])  # the run and the overrides, checked
    return load_opened(opened, device, batch, intrinsics)


def load_opened(opened: OpenedRun, device: str | None = None, batch_size: int = 32, camera: np.ndarray | None = None
                ) -> PoseModel:
    """The PoseModel of a run opened (and checked) by `posereg.runs.open.open_run`."""
    # the one deferred import: torch, Lightning and timm load only once the run and its settings are good
    from posereg.recipes.predict import PoseModel

    return PoseModel(opened, device, batch_size, camera)
