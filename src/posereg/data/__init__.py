"""Datasets (SynthPose and real-data adapters), transforms, samplers and the Lightning data module.

The data module is imported lazily so that importing a dataset adapter does not import Lightning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AugmentConfig", "DataInfo", "PoseDataModule", "build_datamodule"]


def __getattr__(name: str) -> Any:
    if name in ("DataInfo", "PoseDataModule", "build_datamodule"):
        from posereg.data import datamodule

        return getattr(datamodule, name)
    if name == "AugmentConfig":
        from posereg.data.transforms import AugmentConfig

        return AugmentConfig
    raise AttributeError(f"module 'posereg.data' has no attribute {name!r}")
