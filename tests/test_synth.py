"""SynthPose: exact labels, flips, determinism, anatomy statistics and difficulty-knob rates."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from posereg.data.synth import SynthPose
from posereg.data.synth import body as B
from posereg.data.synth.dataset import bone_lengths, knee_elbow_angles
from posereg.data.synth.poses import ANGLE_LIMITS, CONE_LIMITS, sample_pose
from posereg.data.transforms import augment_preset
from posereg.errors import ConfigError
from posereg.geometry import apply_affine, invert_affine, project
from posereg.skeletons import get_joint_set

SIZE = 64
STRONG = augment_preset("synth", scale=(0.7, 1.3), rotation=40.0, rotation_prob=1.0, flip_prob=0.5, translation=0.1)


def _np(x):
    return x.detach().numpy().astype(np.float64)


@pytest.mark.parametrize("joint_set", ["h36m17", "h36m18"])
def test_projection_round_trip_with_augmentation(joint_set):
    ds = SynthPose("train", joint_set, SIZE, STRONG, seed=3, variant="synth3d", length={"train": 40})
    flips = 0
    for i in range(40):
        s = ds[i]
        w = _np(s["weights"])
        assert (w[:, 2] == 1).all()
        err = np.abs(project(_np(s["joints_3d"]), _np(s["camera"])) - _np(s["joints_2d"]))
        assert err.max() < 1e-3
        assert float(s["root_depth"]) == pytest.approx(float(s["joints_3d"][0, 2]), abs=1e-3)
        assert 3000 - 400 < float(s["root_depth"]) < 7000 + 400
        # camera fx equals fy (similarity crop) and scales with the crop
        assert float(s["camera"][0]) == pytest.approx(float(s["camera"][1]), rel=1e-6)
        flips += int(s["joints_3d"][1, 0] > s["joints_3d"][4, 0])  # r_hip right of l_hip: unusual unless...
    assert 0 < flips < 40  # yaw covers the full circle: both orderings occur


def test_crop_to_image_round_trip_is_exact():
    ds = SynthPose("train", "mpii16", SIZE, STRONG, seed=0, variant="synth2d", length={"train": 20})
    for i in range(20):
        s = ds[i]
        A_inv = _np(s["crop_to_image"])
        j2 = _np(s["joints_2d"])
        back = apply_affine(invert_affine(A_inv), apply_affine(A_inv, j2))
        assert np.abs(back - j2).max() < 1e-4
        # original-image joints lie inside the 1000x1000 camera image (the person is fully in view)
        img_pts = apply_affine(A_inv, j2)
        assert (img_pts > -50).all() and (img_pts < 1050).all()
        x, y, w, h = _np(s["bbox"])
        assert float(s["area"]) == pytest.approx(w * h, rel=1e-5)


def test_flip_swaps_labels_and_negates_camera_x():
    kw = dict(seed=5, variant="synth3d", length={"train": 10})
    base = dict(scale=(1.0, 1.0), rotation_prob=0.0, translation=0.0)
    plain = SynthPose("train", "h36m17", SIZE, augment_preset("synth", flip_prob=0.0, **base), **kw)
    flipped = SynthPose("train", "h36m17", SIZE, augment_preset("synth", flip_prob=1.0, **base), **kw)
    fi = np.asarray(get_joint_set("h36m17").flip_index)
    for i in range(5):
        a, b = plain[i], flipped[i]
        ja, jb = _np(a["joints_2d"]), _np(b["joints_2d"])
        assert np.allclose(jb[:, 0], SIZE - ja[fi, 0], atol=1e-4)
        assert np.allclose(jb[:, 1], ja[fi, 1], atol=1e-4)
        pa, pb = _np(a["joints_3d"]), _np(b["joints_3d"])
        assert np.allclose(pb, pa[fi] * [-1, 1, 1], atol=1e-2)
        ca, cb = _np(a["camera"]), _np(b["camera"])
        assert np.allclose(cb, [ca[0], ca[1], SIZE - ca[2], ca[3]], atol=1e-3)


def test_determinism_across_instances_and_workers():
    mk = lambda: SynthPose("train", "mpii16", SIZE, augment_preset("synth", occlusion_prob=0.5), seed=11,  # noqa: E731
                           variant="synth2d", length={"train": 8})
    a, b = mk(), mk()
    for i in (0, 5, 1234):  # any index is a valid procedural sample
        sa, sb = a[i], b[i]
        for k in ("image", "joints_2d", "weights", "camera", "crop_to_image", "head_size"):
            assert torch.equal(sa[k], sb[k]), k
    assert not torch.equal(a[0]["image"], a[1]["image"])
    seed12 = SynthPose("train", "mpii16", SIZE, None, seed=12)[0]["joints_2d"]
    assert not torch.allclose(seed12, SynthPose("train", "mpii16", SIZE, None, seed=11)[0]["joints_2d"])
    batches = [list(DataLoader(a, batch_size=4, num_workers=w)) for w in (0, 2)]
    for b0, b2 in zip(*batches, strict=True):
        assert torch.equal(b0["image"], b2["image"]) and torch.equal(b0["joints_2d"], b2["joints_2d"])


def test_splits_use_their_subjects_and_differ():
    val = SynthPose("val", "h36m17", SIZE, None, seed=0, variant="synth3d")
    test = SynthPose("test", "h36m17", SIZE, None, seed=0, variant="synth3d")
    train = SynthPose("train", "h36m17", SIZE, None, seed=0, variant="synth3d")
    assert {val[i]["meta"]["subject"] for i in range(5)} == {9}
    assert {test[i]["meta"]["subject"] for i in range(5)} == {11}
    assert {train[i]["meta"]["subject"] for i in range(40)} <= {1, 5, 6, 7, 8}
    assert len(val) == 512 and len(train) == 8192
    assert not torch.equal(val[0]["joints_3d"], test[0]["joints_3d"])


def test_bone_lengths_within_configured_ranges_and_subjects_fixed():
    ds = SynthPose("train", "h36m17", SIZE, STRONG, seed=2, variant="synth3d", length={"train": 150})
    samples = [ds[i] for i in range(150)]
    j3 = np.stack([_np(s["joints_3d"]) for s in samples])
    subj = np.array([s["meta"]["subject"] for s in samples])
    lengths = bone_lengths(j3)
    cfg = ds.body_cfg
    for name, v in lengths.items():
        lo, hi = cfg.bone_range(name)
        assert v.min() >= lo - 0.05 and v.max() <= hi + 0.05, name
        for sid in np.unique(subj):  # a subject's bones are the same in every sample (rigid skeleton)
            assert np.ptp(v[subj == sid], axis=0).max() < 0.05
    # the fresh-subject variant spreads over most of the configured range
    thigh = bone_lengths(np.stack([B.forward_kinematics(B.sample_subject(np.random.default_rng(i), cfg),
                                                         sample_pose(np.random.default_rng(i))[1]).joints
                                   for i in range(200)]))["thigh"]
    lo, hi = cfg.bone_range("thigh")
    assert thigh.min() < lo + 0.25 * (hi - lo) and thigh.max() > hi - 0.25 * (hi - lo)


def test_joint_angles_within_limits():
    cfg = B.BodyConfig()
    knee_max, elbow_max = ANGLE_LIMITS["knee"][1], ANGLE_LIMITS["elbow"][1]
    families = set()
    dev_max = 0.0
    for i in range(300):
        rng = np.random.default_rng(100 + i)
        fam, ang = sample_pose(rng)
        families.add(fam)
        for k, v in ang.items():
            lo, hi = ANGLE_LIMITS[k[2:] if k[:2] in ("l_", "r_") else k]
            assert lo <= v <= hi, k
        posed = B.forward_kinematics(B.sample_subject(rng, cfg), ang)
        inner = knee_elbow_angles(posed.joints)
        assert inner[:2].min() >= 180 - knee_max - 1e-6 and inner[2:].min() >= 180 - elbow_max - 1e-6
        J = posed.joints @ posed.root_rotation  # pelvis frame
        for hip, knee in ((B.R_HIP, B.R_KNEE), (B.L_HIP, B.L_KNEE)):
            d = (J[knee] - J[hip]) / np.linalg.norm(J[knee] - J[hip])
            dev = math.degrees(math.acos(np.clip(-d[1], -1, 1)))
            dev_max = max(dev_max, dev)
            assert dev <= CONE_LIMITS["hip"] + 1e-6
    assert families == {"standing", "walking", "sitting", "crouching", "reaching"}
    assert dev_max > 80  # sitting/crouching really flex the hips
    # yaw covers the full circle
    yaws = [sample_pose(np.random.default_rng(i))[1]["yaw"] for i in range(200)]
    assert min(yaws) < -150 and max(yaws) > 150


def test_truncation_rate_and_weights_outside_crop():
    ds = SynthPose("val", "mpii16", SIZE, None, seed=4, variant="synth2d", truncation_rate=0.3,
                   occluder_rate=0.0, length={"val": 300})
    cut = []
    for i in range(300):
        s = ds[i]
        w, j = _np(s["weights"]), _np(s["joints_2d"])
        inside = (j >= 0).all(1) & (j < SIZE).all(1)
        assert np.array_equal(w[:, 0] > 0, inside)
        assert (w[:, 2] == 0).all() and (_np(s["joints_3d"]) == 0).all()
        assert bool(s["meta"]["truncated"]) == (not inside.all())
        cut.append(not inside.all())
    assert abs(np.mean(cut) - 0.3) < 0.08


def test_occluder_rate_and_occlusion_rule():
    kw = dict(seed=6, variant="synth2d", truncation_rate=0.0, occluder_rate=0.4, length={"val": 200})
    keep = SynthPose("val", "mpii16", SIZE, None, occlusion_rule="keep", **kw)
    drop = SynthPose("val", "mpii16", SIZE, None, occlusion_rule="drop", **kw)
    flags, self_occ = [], []
    for i in range(200):
        a, b = keep[i], drop[i]
        flags.append(a["meta"]["occluder"])
        n_occ = a["meta"]["num_occluded"]
        if a["meta"]["occluder"]:
            assert n_occ >= 1  # the occluder is placed over a joint
        self_occ.append(n_occ)
        assert (_np(a["weights"])[:, 0] == 1).all()  # keep: occluded joints stay labelled
        assert int((_np(b["weights"])[:, 0] == 0).sum()) == n_occ
    assert abs(np.mean(flags) - 0.4) < 0.1
    assert 0 < np.mean(np.array(self_occ) > 0) < 1


def test_head_size_is_a_plausible_head():
    ds = SynthPose("val", "h36m17", SIZE, None, seed=0, variant="synth3d")
    for i in range(20):
        s = ds[i]
        f, z = float(s["camera"][0]), float(s["root_depth"])
        head_mm = float(s["head_size"]) * z / f  # crop px -> mm at the root depth
        assert 100 < head_mm < 320


def test_config_errors():
    with pytest.raises(ConfigError, match="variant"):
        SynthPose("train", "mpii16", SIZE, variant="synth4d")
    with pytest.raises(ConfigError, match="truncation_rate"):
        SynthPose("train", "mpii16", SIZE, truncation_rate=1.5)
    with pytest.raises(ConfigError, match="unknown settings"):
        SynthPose("train", "mpii16", SIZE, clutterr=1.0)
    with pytest.raises(ConfigError, match="split"):
        SynthPose("training", "mpii16", SIZE)
    with pytest.raises(ConfigError, match="unknown joint set"):
        SynthPose("train", "mpii15", SIZE)
