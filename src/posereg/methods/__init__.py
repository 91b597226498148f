"""LightningModules: the generic pose module, its builder, loss schedules and the cross-field rules."""

from posereg.methods.build import build_module, build_net
from posereg.methods.pose_module import PoseModule
from posereg.methods.schedule import LossSchedule
from posereg.methods.validate import method_dims, validate_combination

__all__ = ["LossSchedule", "PoseModule", "build_module", "build_net", "method_dims", "validate_combination"]
