"""MPI-INF-3DHP adapter on the real slice: joint order, cameras (h = 204 fault), splits and projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from torch.utils.data import default_collate

from conftest import compose_config
from posereg.data import mpi_inf_3dhp as hp
from posereg.data.cameras import load_cameras
from posereg.geometry import project
from posereg.metrics.pck3d import subset_indices
from posereg.paths import real_slices_dir
from posereg.skeletons import get_joint_set

SLICE = real_slices_dir() / "mpi_inf_3dhp"
TRAIN = {"ann_file": "test_3dhp_train.npz", "camera_file": "cameras_train.pkl", "image_dir": "."}
TEST = {"ann_file": "test_3dhp_test.npz", "camera_file": "cameras_test.pkl", "image_dir": "."}


def test_imgname_parsing():
    assert hp.parse_imgname("S4_Seq2_Cam0_001033.jpg", "t") == {"subject": "S4", "action": "Seq2",
                                                                "camera": "S4_Seq2_Cam0", "frame": 1033}
    assert hp.parse_imgname("TS2_001850.jpg", "t") == {"subject": "TS2", "action": "TS2", "camera": "TS2",
                                                       "frame": 1850}


def test_reorder_into_h36m17_and_pck3d_subset():
    raw = np.load(SLICE / "test_3dhp_train.npz")
    recs = hp.load_records(SLICE, split="train", **TRAIN)
    assert len(recs) == 2
    h36 = get_joint_set("h36m17")
    r = recs[0]
    for k, name in enumerate(hp.NPZ_JOINTS):
        np.testing.assert_allclose(r.joints_3d[h36.index(name)], raw["S"][0][k, :3] * 1000)
    # root (npz 14) is h36m17 joint 0; the official 14 joints are npz 0..13 = PCK3D's subset by name
    np.testing.assert_allclose(r.joints_3d[0], raw["S"][0][14, :3] * 1000)
    sub = subset_indices("h36m17")
    assert sorted(hp.npz_to_h36m17()[i] for i in sub) == list(hp.PCK3D_SUBSET)


def test_h204_fault_ignored_and_projection_consistent():
    cams = load_cameras(SLICE, "cameras_train.pkl", "t")
    assert float(cams["S4_Seq2_Cam0"]["h"]) == 204.0
    assert Image.open(SLICE / "S4_Seq2_Cam0_001033.jpg").size == (2048, 2048)
    for kw, split in ((TRAIN, "train"), (TEST, "test")):
        for labels in ("projected", "part"):
            recs = hp.load_records(SLICE, split=split, labels_2d=labels, **kw)
            for r in recs:
                err = np.abs(project(r.joints_3d, r.camera) - r.joints_2d)[r.visible > 0].max()
                assert err < (1e-9 if labels == "projected" else 2.0)
                # 2048 px images: the 2 m box is well inside and positive
                assert 100 < r.box_size[0] < 2048


def test_test_split_and_invisible_joints():
    recs = hp.load_records(SLICE, split="test", **TEST)
    assert [r.meta["subject"] for r in recs] == ["TS1", "TS2"]
    raw = np.load(SLICE / "test_3dhp_test.npz")
    order = hp.npz_to_h36m17()
    np.testing.assert_array_equal(recs[1].visible_3d, raw["S"][1][order, 3])
    assert recs[1].visible_3d.sum() == 15


def test_config_metrics_report_one_mpjpe_on_the_14_joints():
    # only MPJPE reports `mpjpe` (two metrics logging one name fail the run), on the 14 joints pck3d uses
    cfg = compose_config(["data=mpi_inf_3dhp", f"data.root={SLICE}"])
    metrics = {name: instantiate(spec) for name, spec in cfg.data.metrics.items()}
    ds = hp.MPIINF3DHPDataset(SLICE, split="test", input_size=64, **TEST)
    batch = default_collate([ds[i] for i in range(len(ds))])
    gt = batch["joints_3d"].double()
    pred = gt + torch.from_numpy(np.random.default_rng(0).normal(0, 80, size=gt.shape))
    out = {}
    for name, metric in metrics.items():
        metric.update_from_batch({"joints_3d_cam": pred}, batch)
        out[name] = {k: float(v) for k, v in metric.compute().items()}
    assert set(out["pck3d"]) & set(out["mpjpe"]) == set()
    # by hand: root-aligned error over the official 14 joints that carry a 3D label
    idx = subset_indices("h36m17")
    p, g = (pred - pred[:, :1]).numpy()[:, idx], (gt - gt[:, :1]).numpy()[:, idx]
    mask = batch["weights"][:, idx, 2].numpy() > 0
    assert mask.sum() == 26  # TS2 lacks two of the 14 labels
    expect = np.linalg.norm(p - g, axis=-1)[mask].mean()
    assert 50.0 < expect < 200.0
    assert out["mpjpe"]["mpjpe"] == pytest.approx(expect, rel=1e-6)
    own = instantiate(cfg.data.metrics.pck3d, report_mpjpe=True)
    own.update_from_batch({"joints_3d_cam": pred}, batch)
    assert float(own.compute()["mpjpe"]) == pytest.approx(expect, rel=1e-6)
