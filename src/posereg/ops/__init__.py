"""Pose ops: soft-argmax/integral regression, ramps, heat-map targets, decoding, attention, flips."""

from posereg.ops.attention import aggregate_context, confidence_from_prob, depth_attention, joint_probability
from posereg.ops.decode import argmax_decode, argmax_decode_quarter_offset
from posereg.ops.flip import average_flip, flip_coords_unit, flip_maps
from posereg.ops.integral import expectation, marginals, soft_argmax, spatial_ndim, spatial_softmax
from posereg.ops.ramps import RAMPS, check_ramp, from_unit, ramp_values, to_unit
from posereg.ops.skeleton_map import (
    SkeletonMaps,
    default_bone_colors,
    flip_bone_index,
    render_skeleton_maps,
    skeleton_bones,
)
from posereg.ops.targets import (
    disk_heatmaps,
    gaussian_heatmaps,
    inside_mask,
    onehot_heatmaps,
    onehot_indices,
)

__all__ = [
    "RAMPS",
    "SkeletonMaps",
    "aggregate_context",
    "argmax_decode",
    "argmax_decode_quarter_offset",
    "average_flip",
    "check_ramp",
    "confidence_from_prob",
    "default_bone_colors",
    "depth_attention",
    "disk_heatmaps",
    "expectation",
    "flip_bone_index",
    "flip_coords_unit",
    "flip_maps",
    "from_unit",
    "gaussian_heatmaps",
    "inside_mask",
    "joint_probability",
    "marginals",
    "onehot_heatmaps",
    "onehot_indices",
    "ramp_values",
    "render_skeleton_maps",
    "skeleton_bones",
    "soft_argmax",
    "spatial_ndim",
    "spatial_softmax",
    "to_unit",
]
