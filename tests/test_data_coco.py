"""COCO adapter on the real slice: +0.5 convention, GT-box and detection-box modes, OKS-AP = 1 end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch.utils.data import default_collate

from posereg.data import coco
from posereg.geometry import apply_affine, invert_affine
from posereg.metrics import CocoKeypointAP
from posereg.metrics.batch import gt_2d_image
from posereg.metrics.coco import evaluate_keypoints, load_coco
from posereg.metrics.oks import oks, oks_nms
from posereg.paths import real_slices_dir

SLICE = real_slices_dir() / "coco"
ANN = SLICE / "test_coco.json"
KW = {"ann_file": "test_coco.json", "image_dir": ".", "input_size": 32}
GT = json.loads(ANN.read_text())


def _batch(ds: coco.COCODataset) -> dict:
    return default_collate([ds[i] for i in range(len(ds))])


def test_convention_and_box():
    assert coco.from_coco_convention([0.0, 0.0]).tolist() == [0.5, 0.5]
    assert coco.to_coco_convention(coco.from_coco_convention([3.0, 4.0])).tolist() == [3.0, 4.0]
    c, s = coco.box_to_crop([10, 20, 30, 80], aspect_ratio=0.75)
    np.testing.assert_allclose(c, [25, 60])
    np.testing.assert_allclose(s, [60 * 1.25, 80 * 1.25])


def test_gt_box_records_and_round_trip():
    ds = coco.COCODataset(SLICE, split="val", input_size=(24, 32), ann_file="test_coco.json", image_dir=".")
    with_kp = [a for a in GT["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    assert len(ds) == len(with_kp) == 12
    batch = _batch(ds)
    gt = gt_2d_image(batch).numpy()
    for k, ann in enumerate(with_kp):
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        vis = kp[:, 2] > 0
        np.testing.assert_allclose(gt[k][vis], kp[vis, :2] + 0.5, atol=1e-3)
        assert batch["meta"]["image_id"][k] == ann["image_id"]
    assert tuple(batch["image"].shape[2:]) == (32, 24)


def test_gt_boxes_perfect_predictions_give_ap_1():
    batch = _batch(coco.COCODataset(SLICE, split="val", **KW))
    m = CocoKeypointAP(ann_file=str(ANN))
    m.update_from_batch({"joints_2d_image": gt_2d_image(batch)}, batch)
    out = m.compute()
    assert out["coco_ap"] == pytest.approx(1.0) and out["coco_ap50"] == pytest.approx(1.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_detection_boxes_with_threshold_and_oks_nms():
    dets = json.loads((SLICE / "test_coco_det_AP_H_56.json").read_text())
    ds = coco.COCODataset(SLICE, split="val", bbox_file="test_coco_det_AP_H_56.json", det_score_thr=0.2, **KW)
    assert len(ds) == sum(d["score"] >= 0.2 for d in dets) < len(dets)
    batch = _batch(ds)
    # "perfect" prediction of each detection: the keypoints of the GT person it overlaps most,
    # pushed into the crop and mapped back by the sample's inverse crop
    people = [a for a in GT["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    results = []
    for k in range(len(ds)):
        img, box = int(batch["meta"]["image_id"][k]), batch["bbox"][k].double().numpy()
        cands = [a for a in people if a["image_id"] == img]
        best = max(cands, key=lambda a: _iou(box, np.array(a["bbox"])))
        kp = np.array(best["keypoints"], dtype=np.float64).reshape(17, 3)
        c2i = batch["crop_to_image"][k].double().numpy()
        in_crop = apply_affine(invert_affine(c2i), coco.from_coco_convention(kp[:, :2]))
        back = coco.to_coco_convention(apply_affine(c2i, in_crop))
        results.append({"image_id": img, "category_id": 1, "score": float(batch["meta"]["box_score"][k]),
                        "area": float(best["area"]),
                        "keypoints": np.concatenate([back, np.ones((17, 1))], 1).reshape(-1).tolist()})
    gt = load_coco(ANN)
    without_nms = evaluate_keypoints(gt, [dict(r) for r in results])["coco_ap"]
    kept = []
    for img in sorted({r["image_id"] for r in results}):
        same = [r for r in results if r["image_id"] == img]
        kept += [same[i] for i in oks_nms(same, thr=0.9)]
    with_nms = evaluate_keypoints(gt, kept)["coco_ap"]
    assert with_nms == pytest.approx(1.0)
    assert without_nms < 0.99  # duplicates of one person are false positives
    assert len(kept) == len(people)


def test_oks_nms_hand_example():
    kp = np.zeros((17, 3))
    kp[:, 0] = np.arange(17) * 10.0
    far = kp.copy()
    far[:, 1] += 100.0
    near = kp.copy()
    near[:, 0] += 0.5
    inst = [{"keypoints": kp, "score": 0.5, "area": 1000.0}, {"keypoints": near, "score": 0.9, "area": 1000.0},
            {"keypoints": far, "score": 0.7, "area": 1000.0}]
    assert oks_nms(inst, thr=0.9) == [1, 2]
    assert oks(kp[:, :2], kp[:, :2], 1000.0) == pytest.approx(1.0)
