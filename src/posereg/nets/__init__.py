"""Networks: the network contract, the `cut` parser, timm backbones, heads and the pose networks."""

from posereg.nets.backbone import Backbone, create_timm
from posereg.nets.contract import Output, PoseNet
from posereg.nets.cut import Cut, auto_fps, parse_cut
from posereg.nets.deconv_head import DeconvHead, deconv_head
from posereg.nets.integral_net import HeatmapNet, RegressionNet
from posereg.nets.multistage import MultiStageNet
from posereg.nets.regression_head import RegressionHead

__all__ = [
    "Backbone",
    "Cut",
    "DeconvHead",
    "HeatmapNet",
    "MultiStageNet",
    "Output",
    "PoseNet",
    "RegressionHead",
    "RegressionNet",
    "auto_fps",
    "create_timm",
    "deconv_head",
    "parse_cut",
]
