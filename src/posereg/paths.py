"""Locations of the config tree and other repository-level folders."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(os.environ.get("POSEREG_CONF_DIR", REPO_ROOT / "conf")).resolve()
TEMPLATES_DIR = Path(os.environ.get("POSEREG_TEMPLATES_DIR", REPO_ROOT / "multirun_templates")).resolve()
