"""Networks: timm backbones, deconv / regression heads, single- and multi-stage pose nets."""

from posereg.nets.backbone import Backbone, build_backbone, create_timm
from posereg.nets.deconv_head import DeconvHead
from posereg.nets.integral_net import IntegralNet
from posereg.nets.multistage import MultiStageNet
from posereg.nets.regression_head import RegressionHead

__all__ = [
    "Backbone",
    "DeconvHead",
    "IntegralNet",
    "MultiStageNet",
    "RegressionHead",
    "build_backbone",
    "create_timm",
]
