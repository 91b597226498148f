"""Pose metrics: pure tensor functions (``functional``) and torchmetrics classes around them."""

from posereg.metrics.coco import STAT_NAMES as COCO_STAT_NAMES
from posereg.metrics.coco import CocoKeypointAP
from posereg.metrics.mpjpe import H36M_ACTIONS, MPJPE
from posereg.metrics.pck import PCK
from posereg.metrics.pck3d import PCK3D
from posereg.metrics.pckh import PCKh

__all__ = ["COCO_STAT_NAMES", "H36M_ACTIONS", "MPJPE", "PCK", "PCK3D", "CocoKeypointAP", "PCKh"]
