"""LightningModules: the generic pose module, its builder and loss schedules."""

from posereg.methods.build import build_module, build_net, method_dims, validate_combination
from posereg.methods.pose_module import PoseModule, resolve_cut
from posereg.methods.schedule import LossSchedule

__all__ = ["LossSchedule", "PoseModule", "build_module", "build_net", "method_dims", "resolve_cut",
           "validate_combination"]
