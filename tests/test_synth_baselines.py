"""SynthPose chance levels (mean pose, root depth), checked against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest

from posereg.bench.baselines import mean_pose_chance, root_depth_chance
from posereg.data.synth import SynthPose


def _root_relative(ds: SynthPose, n: int) -> np.ndarray:
    joints = np.stack([ds[i]["joints_3d"].numpy() for i in range(n)]).astype(np.float64)
    return joints - joints[:, :1]


def test_mean_pose_chance_matches_numpy_and_is_far_from_zero():
    chance = mean_pose_chance("synth3d", "val", seed=0, n_train=120, n_eval=40)
    mean = _root_relative(SynthPose("train", None, 64, None, seed=0, variant="synth3d"), 120).mean(0)
    val = _root_relative(SynthPose("val", None, 64, None, seed=0, variant="synth3d"), 40)
    expected = np.linalg.norm(val - mean, axis=-1).mean()  # all 17 joints, the root's zero error included
    assert chance["mpjpe"] == pytest.approx(expected, rel=1e-6)
    # a human-sized body over the full circle of orientations: a few hundred mm, and Procrustes helps
    assert 200.0 < chance["mpjpe"] < 400.0
    assert chance["pa_mpjpe"] < chance["mpjpe"]


def test_mean_pose_chance_refuses_2d_only_variants():
    with pytest.raises(ValueError, match="no 3D labels"):
        mean_pose_chance("synth2d", n_train=4, n_eval=4)


def test_root_depth_chance_matches_numpy():
    chance = root_depth_chance("synth3d", "val", seed=0, n_train=100, n_eval=30)
    train = SynthPose("train", None, 64, None, seed=0, variant="synth3d")
    val = SynthPose("val", None, 64, None, seed=0, variant="synth3d")
    z_tr = np.array([float(train[i]["root_depth"]) for i in range(100)])
    f_tr = np.array([float(train[i]["camera"][0]) for i in range(100)])
    z = np.array([float(val[i]["root_depth"]) for i in range(30)])
    f = np.array([float(val[i]["camera"][0]) for i in range(30)])
    extent = np.median(z_tr * 64 / f_tr)
    assert chance["box_extent_mm"] == pytest.approx(extent, rel=1e-6)
    assert chance["mean_depth"] == pytest.approx(np.abs(z - z_tr.mean()).mean(), rel=1e-6)
    assert chance["box_prior"] == pytest.approx(np.abs(z - f / 64 * extent).mean(), rel=1e-6)
    # cameras 3-7 m away: a guess that ignores the person is off by most of a metre
    assert 500.0 < chance["mean_depth"] < 1500.0
