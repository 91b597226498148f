"""Human3.6M adapter on the real slice: parsing, protocols, cameras, distortion and crops."""

from __future__ import annotations

import numpy as np
import pytest

from posereg.data import h36m
from posereg.data.cameras import get_camera, load_cameras
from posereg.data.transforms import augment_preset
from posereg.geometry import apply_affine, invert_affine, project
from posereg.metrics.mpjpe import action_key
from posereg.paths import real_slices_dir

SLICE = real_slices_dir() / "h36m"
SUBJECTS = ["S1", "S5", "S7", "S8"]
KW = {"ann_files": ["test_h36m_body3d.npz"], "camera_file": "cameras.pkl", "image_dir": ".", "subjects": SUBJECTS,
      "eval_step": 1}


def test_imgname_parsing():
    info = h36m.parse_imgname("S8/S8_WalkDog_1.55011271/S8_WalkDog_1.55011271_000026.jpg", "t")
    assert info == {"subject": "S8", "action": "WalkDog", "subaction": "WalkDog_1", "camera": "55011271",
                    "frame": 26}
    info = h36m.parse_imgname("S5_SittingDown.54138969_002061.jpg", "t")
    assert (info["action"], info["subaction"], info["frame"]) == ("SittingDown", "SittingDown", 2061)
    assert action_key(info["action"]) == "sittingdown"


def test_protocol_subjects_and_every_64th_frame():
    assert h36m.PROTOCOLS["p1"] == {"train": ("S1", "S5", "S6", "S7", "S8", "S9"), "test": ("S11",)}
    assert h36m.PROTOCOLS["p2"] == {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}
    frames = np.arange(1, 200)
    assert frames[h36m.select_frames(frames, 64)].tolist() == [1, 65, 129, 193]
    # slice frames 1, 2061, 396, 26: only frame 1 survives the every-64th selection
    recs = h36m.load_records(SLICE, split="test", **{**KW, "eval_step": 64})
    assert [r.meta["frame"] for r in recs] == [1]
    # P2 test subjects (S9, S11) are not in the slice; P2 train keeps S1, S5, S7, S8 (all frames)
    kw = {k: v for k, v in KW.items() if k != "subjects"}
    assert len(h36m.load_records(SLICE, split="train", protocol="p2", **kw)) == 4
    with pytest.raises(Exception, match="no records of subjects"):
        h36m.load_records(SLICE, split="test", protocol="p1", **kw)


def test_records_units_meta_and_image_size_independent_of_pickle():
    recs = h36m.load_records(SLICE, split="test", **KW)
    assert len(recs) == 4
    raw = np.load(SLICE / "test_h36m_body3d.npz")
    r = recs[2]
    np.testing.assert_allclose(r.joints_3d, raw["S"][2][:, :3] * 1000.0)
    assert r.meta["subject"] == "S7" and r.meta["camera"] == "55011271" and r.meta["action"] == "Greeting"
    assert r.visible.sum() == 17 and r.visible_3d.sum() == 17


def test_distortion_model_reproduces_part_and_pinhole_does_not():
    cams = load_cameras(SLICE, "cameras.pkl", "t")
    raw = np.load(SLICE / "test_h36m_body3d.npz")
    worst_d, worst_p = 0.0, 0.0
    for i, name in enumerate(raw["imgname"]):
        info = h36m.parse_imgname(str(name), "t")
        cam = get_camera(cams, (info["subject"], info["camera"]), "t")
        j3 = raw["S"][i][:, :3] * 1000
        worst_d = max(worst_d, np.abs(cam.project(j3) - raw["part"][i][:, :2]).max())
        worst_p = max(worst_p, np.abs(cam.project(j3, distort=False) - raw["part"][i][:, :2]).max())
    assert worst_d < 0.2
    assert worst_p > 1.0


@pytest.mark.parametrize("crop", ["integral_2m", "center_scale"])
def test_crop_geometry_2m_box(crop):
    recs = h36m.load_records(SLICE, split="test", crop=crop, **KW)
    cams = load_cameras(SLICE, "cameras.pkl", "t")
    r = recs[0]
    cam = get_camera(cams, ("S1", "54138969"), "t")
    if crop == "integral_2m":
        fx, fy, cx, cy = cam.intrinsics
        z = r.joints_3d[0, 2]
        assert r.box_size[0] == pytest.approx(2000 * np.sqrt(fx * fy) / z)
        np.testing.assert_allclose(r.center, [fx * r.joints_3d[0, 0] / z + cx, fy * r.joints_3d[0, 1] / z + cy])
    else:
        raw = np.load(SLICE / "test_h36m_body3d.npz")
        assert r.box_size[0] == pytest.approx(raw["scale"][0] * 200)
        np.testing.assert_allclose(r.center, raw["center"][0])


def test_labels_2d_modes_agree_with_3d():
    proj = h36m.load_records(SLICE, split="test", **KW)
    part = h36m.load_records(SLICE, split="test", labels_2d="part", **KW)
    for a, b in zip(proj, part, strict=True):
        # projected labels: the pinhole camera reproduces them exactly
        np.testing.assert_allclose(project(a.joints_3d, a.camera), a.joints_2d, atol=1e-9)
        assert np.abs(a.joints_2d - b.joints_2d).max() < 3.0
    A = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, -3.0]])
    np.testing.assert_allclose(apply_affine(invert_affine(A), apply_affine(A, part[0].joints_2d)),
                               part[0].joints_2d, atol=1e-9)


def test_mixed_h36m_mpii_batches_have_z_weights_only_on_h36m(make_cfg):
    from posereg.data import build_datamodule

    sl = SLICE.parent
    cfg = make_cfg(
        "data=h36m_mpii", f"data.h36m_root={sl / 'h36m'}", f"data.mpii_root={sl / 'mpii'}",
        "data.sources.h36m.ann_files=[test_h36m_body3d.npz]", "data.sources.h36m.camera_file=cameras.pkl",
        "data.sources.h36m.image_dir=.", "data.sources.h36m.subjects=[S1,S5,S7,S8]",
        "data.sources.mpii.ann_file=test_mpii.json", "data.sources.mpii.image_dir=.", "data.head_size_proxy=true",
        "data.input_size=64", "data.batch_size=4", "data.eval_batch_size=4", "data.num_workers=0",
        "data.eval_step=1",
    )
    assert cfg.data.monitor == "val/mpjpe"
    dm = build_datamodule(cfg)
    assert dm.info.has_3d and dm.info.has_2d and dm.info.joint_set == "h36m18"
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    names = list(batch["meta"]["dataset"])
    assert sorted(names) == ["h36m", "h36m", "mpii", "mpii"]
    w = batch["weights"]
    for k, name in enumerate(names):
        if name == "h36m":
            assert (w[k, :, 2] > 0).all()  # all 18 joints, the thorax derived from the shoulders
        else:
            assert (w[k, :, 2] == 0).all()
            # H36M torso (7) and nose (9) have no MPII counterpart: no supervision at all
            assert (w[k, [7, 9]] == 0).all() and (w[k, [0, 8, 10, 17], :2] > 0).all()
    assert batch["joints_2d"].shape == (4, 18, 2)


DS_KW = {**KW, "input_size": 64}


@pytest.mark.parametrize("augment", [None, augment_preset("default", rotation_prob=1.0, flip_prob=1.0,
                                                          scale=[0.8, 1.2])])
def test_samples_projection_and_round_trip(augment):
    from posereg.data.h36m import H36MDataset

    raw = np.load(SLICE / "test_h36m_body3d.npz")
    cams = load_cameras(SLICE, "cameras.pkl", "t")
    proj = H36MDataset(SLICE, split="test", augment=augment, **DS_KW)
    part = H36MDataset(SLICE, split="test", labels_2d="part", augment=augment, **DS_KW)
    for i in range(len(proj)):
        s = proj[i]
        j2, j3, cam = s["joints_2d"].double().numpy(), s["joints_3d"].double().numpy(), s["camera"].double().numpy()
        # pinhole labels: the crop camera reproduces them, exactly up to fx != fy under rotation, where
        # the 4-parameter crop camera misses the commutator (R F - F R) = (fx - fy) sin(rot) [..]:
        # a joint r px from the principal point is off by at most |fx - fy| / min(fx, fy) * r
        err = np.linalg.norm(project(j3, cam) - j2, axis=-1)
        r = np.linalg.norm(j2 - cam[2:4], axis=-1)
        anisotropy = 0.0 if augment is None else abs(cam[0] - cam[1]) / min(cam[0], cam[1])
        assert (err < 1e-3 + anisotropy * r).all()
        assert float(s["root_depth"]) == pytest.approx(raw["S"][i][0, 2] * 1000, rel=1e-6)
        # part labels: the distortion model through the crop reproduces them within 0.5 px
        p = part[i]
        info = h36m.parse_imgname(str(raw["imgname"][i]), "t")
        cam_d = get_camera(cams, (info["subject"], info["camera"]), "t")
        err = np.abs(h36m.distorted_crop_projection(p["joints_3d"].double().numpy(), cam_d,
                                                    p["crop_to_image"].double().numpy())
                     - p["joints_2d"].double().numpy()).max()
        assert err < 0.5
        if augment is None:
            # crop -> original image round trip returns the npz labels
            back = apply_affine(p["crop_to_image"].double().numpy(), p["joints_2d"].double().numpy())
            np.testing.assert_allclose(back, raw["part"][i][:, :2], atol=2e-3)
