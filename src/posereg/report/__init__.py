"""Grid results -> the papers' tables (md/csv/tex/html) and plots, from run directories only.

The names below are imported on first use, so that reading a template or a grid's manifest does not load the
statistics and plotting modules (scipy, matplotlib): posereg-sweep answers --help and typos without them.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"Report": "build", "build_report": "build", "make_table": "build", "RunRecord": "collect",
          "collect": "collect", "load_run": "collect", "Table": "table", "build_table": "table",
          "Template": "template", "load_template": "template"}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"posereg.report.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'posereg.report' has no attribute {name!r}")
