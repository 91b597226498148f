"""Loss terms (`LossTerm` subclasses chosen by `method.loss.<name>._target_`) and their sum over outputs."""

from posereg.losses.deeppose import CropL2
from posereg.losses.skeleton import SkeletonMapBCE
from posereg.losses.terms import (
    ConfidenceBCE,
    CoordLoss,
    DiskHeatmapBCE,
    GaussianHeatmapMSE,
    HeatmapLoss,
    LossTerm,
    OneHotHeatmapCE,
    PoseLoss,
)

__all__ = ["ConfidenceBCE", "CoordLoss", "CropL2", "DiskHeatmapBCE", "GaussianHeatmapMSE", "HeatmapLoss", "LossTerm",
           "OneHotHeatmapCE", "PoseLoss", "SkeletonMapBCE"]
