"""posereg: human pose regression in 2D and 3D.

    import posereg
    model = posereg.load("runs/default/seed=0")     # a finished run
    result = model.predict(image)                    # result.joints_2d (N, J, 2) image pixels

The API (`compose`, `train`, `evaluate`, `load`, `export`, `PoseModel`, `PoseResult`; `posereg.api`) is
imported on first use: `import posereg` itself loads no torch. Guide: docs/python.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {"compose": "posereg.api.config", "train": "posereg.api.train", "evaluate": "posereg.api.evaluate",
        "load": "posereg.api.model", "export": "posereg.api.export", "PoseModel": "posereg.recipes.predict",
        "PoseResult": "posereg.inference.result"}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'posereg' has no attribute {name!r}")
