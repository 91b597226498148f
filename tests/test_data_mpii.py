"""MPII adapter on the real slice: 1-based conversion, crop box, head sizes, PCKh end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat
from torch.utils.data import default_collate

from posereg.data import mpii
from posereg.errors import ConfigError
from posereg.metrics import PCKh
from posereg.metrics.batch import gt_2d_image, head_size_image
from posereg.metrics.pckh import mpii_pckh
from posereg.paths import real_slices_dir

SLICE = real_slices_dir() / "mpii"
KW = {"ann_file": "test_mpii.json", "image_dir": str(SLICE), "input_size": 64}
RAW = json.loads((SLICE / "test_mpii.json").read_text())


def write_headboxes(path: Path, side: float) -> None:
    """A synthetic mpii_gt_val.mat: square head boxes of the given side, pos_gt_src from the json."""
    n = len(RAW)
    hb = np.zeros((2, 2, n))
    hb[1] = side  # box [0,0]-[side,side] for every record: diagonal side * sqrt(2)
    pos = np.transpose(np.array([r["joints"] for r in RAW], dtype=np.float64), (1, 2, 0))
    savemat(str(path), {"headboxes_src": hb, "pos_gt_src": pos})


def test_one_based_conversion_is_half_pixel_and_invertible():
    assert mpii.from_mpii_convention([1.0, 1.0]).tolist() == [0.5, 0.5]  # pixel 1 (1-based) = [0, 1) x [0, 1)
    xy = np.array([[804.0, 711.0], [3.25, 7.5]])
    np.testing.assert_array_equal(mpii.to_mpii_convention(mpii.from_mpii_convention(xy)), xy)


def test_records_box_and_labels():
    recs = mpii.load_records(SLICE, split="train", ann_file="test_mpii.json", image_dir=str(SLICE))
    assert len(recs) == 5
    r, raw = recs[0], RAW[0]
    np.testing.assert_allclose(r.joints_2d, np.array(raw["joints"]) - 0.5)
    s = raw["scale"]
    np.testing.assert_allclose(r.center, [raw["center"][0] - 0.5, raw["center"][1] - 0.5 + 15 * s])
    np.testing.assert_allclose(r.box_size, [s * 200 * 1.25] * 2)
    r2 = recs[2]  # joints_vis 0 at r_ankle and l_ankle
    assert r2.visible.tolist() == RAW[2]["joints_vis"]


def test_crop_round_trip_to_original_image(tmp_path):
    write_headboxes(tmp_path / "gt.mat", 50.0)
    ds = mpii.MPIIDataset(SLICE, split="val", headboxes=str(tmp_path / "gt.mat"), **KW)
    batch = default_collate([ds[i] for i in range(len(ds))])
    gt = gt_2d_image(batch).numpy()
    for k, raw in enumerate(RAW):
        vis = np.array(raw["joints_vis"]) > 0
        np.testing.assert_allclose(gt[k][vis], np.array(raw["joints"])[vis] - 0.5, atol=2e-3)
    # the real head size is 0.6 x diagonal, in image pixels after the inverse crop scale
    np.testing.assert_allclose(head_size_image(batch).numpy(), 0.6 * 50 * np.sqrt(2), rtol=1e-5)


def test_pckh_perfect_is_100_and_one_pixel_shift_is_one_pixel(tmp_path):
    side = 2.0 / 0.6 / np.sqrt(2)  # head size exactly 2 px: a 1 px error is d = 0.5
    write_headboxes(tmp_path / "gt.mat", side)
    ds = mpii.MPIIDataset(SLICE, split="val", headboxes=str(tmp_path / "gt.mat"), **KW)
    batch = default_collate([ds[i] for i in range(len(ds))])
    gt = gt_2d_image(batch)
    m = PCKh(thresholds=(0.5, 0.1))
    m.update_from_batch({"joints_2d_image": gt.clone()}, batch)
    out = m.compute()
    assert float(out["pckh@0.5"]) == pytest.approx(100.0) and float(out["pckh@0.1"]) == pytest.approx(100.0)
    shift = torch.tensor([0.6, 0.8], dtype=torch.float64)  # a one-pixel displacement
    d = torch.linalg.norm(gt.double() + shift - gt_2d_image(batch).double(), dim=-1)
    torch.testing.assert_close(d, torch.ones_like(d))
    for delta, expect in ((0.99, 100.0), (1.01, 0.0)):
        m = PCKh(thresholds=(0.5,))
        m.update_from_batch({"joints_2d_image": gt + torch.tensor([delta, 0.0])}, batch)
        assert float(m.compute()["pckh@0.5"]) == pytest.approx(expect)


def test_pckh_refused_without_head_boxes_unless_proxy():
    with pytest.raises(ConfigError, match="head_size_proxy"):
        mpii.MPIIDataset(SLICE, split="val", **KW)
    ds = mpii.MPIIDataset(SLICE, split="val", head_size_proxy=True, **KW)
    batch = default_collate([ds[i] for i in range(len(ds))])
    j = np.array(RAW[0]["joints"])
    expect = 0.6 * np.sqrt(2) * np.linalg.norm(j[9] - j[8])
    assert float(head_size_image(batch)[0]) == pytest.approx(expect, rel=1e-5)
    m = mpii_pckh(head_size_proxy=True)
    m.update_from_batch({"joints_2d_image": gt_2d_image(batch)}, batch)
    out = m.compute()
    assert float(out["pckh_proxy@0.5"]) == pytest.approx(100.0)
    assert not any(k.startswith("pckh@") for k in out) and "auc_proxy" in out
    # training needs no head size
    assert len(mpii.MPIIDataset(SLICE, split="train", **KW)) == 5


def test_headboxes_with_wrong_count_or_order_are_refused(tmp_path):
    savemat(str(tmp_path / "bad.mat"), {"headboxes_src": np.ones((2, 2, 3))})
    with pytest.raises(Exception, match=r"\(2, 2, 5\)"):
        mpii.MPIIDataset(SLICE, split="val", headboxes=str(tmp_path / "bad.mat"), **KW)
    pos = np.transpose(np.array([r["joints"] for r in RAW[::-1]], dtype=np.float64), (1, 2, 0))
    savemat(str(tmp_path / "rev.mat"), {"headboxes_src": np.ones((2, 2, 5)), "pos_gt_src": pos})
    with pytest.raises(Exception, match="record orders differ"):
        mpii.MPIIDataset(SLICE, split="val", headboxes=str(tmp_path / "rev.mat"), **KW)
