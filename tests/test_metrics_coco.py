"""COCO OKS-AP: perfect predictions give 1.0; perturbed ones equal a direct pycocotools call."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posereg.errors import DataError
from posereg.metrics import COCO_STAT_NAMES, CocoKeypointAP
from posereg.paths import real_slices_dir

ANN = real_slices_dir() / "coco" / "test_coco.json"
# the pycocotools comparisons need the real slice; the oks() / computeOks test builds its own GT
needs_slice = pytest.mark.skipif(not ANN.is_file(), reason="real COCO slice not present")


def coco_people() -> list[dict]:
    """Annotated people (num_keypoints > 0) of the slice."""
    return [a for a in json.loads(ANN.read_text())["annotations"] if a["num_keypoints"] > 0]


def perturbed(seed: int = 0):
    """COCO-convention keypoints with noise ~ 6% of the person scale, keypoint and box scores."""
    rng = np.random.default_rng(seed)
    anns = coco_people()
    kp = np.array([np.reshape(a["keypoints"], (17, 3))[:, :2] for a in anns], dtype=np.float64)
    scale = np.sqrt([a["area"] for a in anns])[:, None, None]
    kp = kp + rng.normal(0, 1, kp.shape) * 0.06 * scale
    conf = rng.uniform(0.2, 1.0, (len(anns), 17))
    box = rng.uniform(0.5, 1.0, len(anns))
    return anns, kp, conf, box


def direct_cocoeval(results: list[dict]) -> np.ndarray:
    """The 10 stats from a plain pycocotools call."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ANN))
        ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@needs_slice
def test_perfect_predictions_give_ap_one():
    anns = coco_people()
    kp = torch.tensor([np.reshape(a["keypoints"], (17, 3))[:, :2] for a in anns], dtype=torch.float64)
    m = CocoKeypointAP(ann_file=str(ANN))
    m.update(kp + 0.5, [a["image_id"] for a in anns])  # posereg pixels = COCO + 0.5
    out = m.compute()
    assert set(out) == set(COCO_STAT_NAMES)
    for name in ("coco_ap", "coco_ap50", "coco_ap75", "coco_ar", "coco_ar50", "coco_ar75"):
        assert out[name] == pytest.approx(1.0), name
    # forgetting the half-pixel shift costs AP on this slice's small people
    shifted = CocoKeypointAP(ann_file=str(ANN), pixel_offset=-3.0)
    shifted.update(kp + 0.5, [a["image_id"] for a in anns])
    assert shifted.compute()["coco_ap"] < 1.0


@needs_slice
def test_perturbed_predictions_equal_direct_pycocotools():
    anns, kp, conf, box = perturbed()
    results = [{"image_id": a["image_id"], "category_id": 1,
                "keypoints": np.concatenate([kp[k], conf[k, :, None]], -1).reshape(-1).tolist(),
                "score": float(box[k] * conf[k].mean())} for k, a in enumerate(anns)]
    expect = direct_cocoeval(results)
    assert 0.05 < expect[0] < 0.99  # a non-trivial AP
    m = CocoKeypointAP(ann_file=str(ANN))
    half = len(anns) // 2
    for sl in (slice(0, half), slice(half, None)):
        m.update(torch.from_numpy(kp[sl] + 0.5), [a["image_id"] for a in anns[sl]],
                 torch.from_numpy(conf[sl]), torch.from_numpy(box[sl]))
    out = m.compute()
    np.testing.assert_allclose([out[n] for n in COCO_STAT_NAMES], expect, atol=1e-12)


def _batch_from(anns, kp_image: np.ndarray, conf: np.ndarray, box: np.ndarray, shift: float = 40.0):
    """A collated batch whose crops are translations by -shift; GT mapped back with crop_to_image."""
    n = len(anns)
    gt = np.array([np.reshape(a["keypoints"], (17, 3)) for a in anns], dtype=np.float64)
    a = torch.tensor([[1.0, 0.0, shift], [0.0, 1.0, shift]], dtype=torch.float64).expand(n, 2, 3)
    weights = torch.from_numpy(np.repeat((gt[:, :, 2:] > 0), 3, -1).astype(np.float32))
    batch = {"joints_2d": torch.from_numpy(gt[:, :, :2] + 0.5 - shift), "crop_to_image": a, "weights": weights,
             "bbox": torch.tensor([x["bbox"] for x in anns]), "area": torch.tensor([x["area"] for x in anns]),
             "meta": {"image_id": [x["image_id"] for x in anns], "index": list(range(n)),
                      "box_score": box.tolist()}}
    preds = {"joints_2d_image": torch.from_numpy(kp_image + 0.5), "joints_3d_cam": None,
             "joint_conf": torch.from_numpy(conf)}
    return preds, batch


@needs_slice
def test_update_from_batch_with_and_without_ann_file():
    anns, kp, conf, box = perturbed(seed=1)
    preds, batch = _batch_from(anns, kp, conf, box)
    official, from_batch = CocoKeypointAP(ann_file=str(ANN)), CocoKeypointAP()
    for m in (official, from_batch):
        m.update_from_batch(preds, batch)
    a, b = official.compute(), from_batch.compute()
    # the file's extra annotations have no keypoints and are ignored, so the GTs agree
    np.testing.assert_allclose([a[n] for n in COCO_STAT_NAMES], [b[n] for n in COCO_STAT_NAMES], atol=1e-12)
    assert 0.05 < a["coco_ap"] < 0.99
    # a duplicated sample (DistributedSampler padding) is counted once
    dup = CocoKeypointAP(ann_file=str(ANN))
    dup.update_from_batch(preds, batch)
    one = {k: (v[:1] if k != "meta" else {kk: vv[:1] for kk, vv in v.items()}) for k, v in batch.items()}
    dup.update_from_batch({k: (v[:1] if v is not None else None) for k, v in preds.items()}, one)
    assert dup.compute() == a


@needs_slice
def test_unknown_image_id_is_a_data_error():
    m = CocoKeypointAP(ann_file=str(ANN))
    m.update(torch.zeros(1, 17, 2), [123456789])
    with pytest.raises(DataError):
        m.compute()


@needs_slice
def test_oks_nms_inside_the_metric_removes_duplicate_detections():
    """Two predictions of the same person (a duplicate detection) are a false positive unless OKS-NMS runs."""
    from posereg.metrics.coco import load_coco

    gt = load_coco(ANN)
    people = [a for a in gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]][:3]
    kp = torch.tensor([np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)[:, :2] for a in people]) + 0.5
    dup = torch.cat([kp, kp + 1.0])  # each person twice, the copy 1 px off and lower scored
    ids = [a["image_id"] for a in people] * 2
    # the first person's duplicate outranks the other people's true predictions: a false positive early on
    scores = torch.tensor([1.0, 0.6, 0.5, 0.9, 0.4, 0.3], dtype=torch.float64)
    areas = torch.tensor([a["area"] for a in people] * 2, dtype=torch.float64)
    plain = CocoKeypointAP(ann_file=str(ANN), restrict_to_predicted_images=True)
    nms = CocoKeypointAP(ann_file=str(ANN), restrict_to_predicted_images=True, oks_nms_thr=0.9)
    for metric in (plain, nms):
        metric.update(dup, ids, box_scores=scores, pred_area=areas)
    assert plain.compute()["coco_ap"] < 0.99
    assert nms.compute()["coco_ap"] == pytest.approx(1.0)
    single = CocoKeypointAP(ann_file=str(ANN), restrict_to_predicted_images=True)
    single.update(kp, ids[:3], box_scores=scores[:3], pred_area=areas[:3])
    assert nms.compute()["coco_ap"] == pytest.approx(single.compute()["coco_ap"])


def _pycocotools_oks(gts: list[dict], dts: list[dict]) -> np.ndarray:
    """pycocotools' own COCOeval.computeOks on one image: rows = detections by descending score."""
    images = [{"id": 1}]
    cats = [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)]}]
    anns = [dict(a, id=k + 1, image_id=1, category_id=1, iscrowd=0) for k, a in enumerate(gts)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        dt = gt.loadRes([dict(d, image_id=1, category_id=1) for d in dts])
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.imgIds = [1]
        ev._prepare()
        return np.asarray(ev.computeOks(1, 1))


def test_oks_equals_pycocotools_compute_oks_with_box_fallback():
    """oks() = computeOks for full, partial and zero-labelled GTs (COCO's expanded-box fallback)."""
    from posereg.metrics.oks import oks

    rng = np.random.default_rng(3)
    base = rng.uniform(100, 160, (17, 2))
    gts = []
    boxes = ((17, [95.0, 90.0, 70.0, 80.0]), (6, [90.0, 100.0, 60.0, 50.0]), (0, [120.0, 110.0, 30.0, 40.0]))
    for n_labelled, box in boxes:
        v = np.zeros(17)
        v[rng.permutation(17)[:n_labelled]] = rng.choice([1, 2], n_labelled)
        xy = np.where(v[:, None] > 0, base + rng.normal(0, 3, (17, 2)), 0.0)
        kp = np.concatenate([xy, v[:, None]], 1).reshape(-1).tolist()
        gts.append({"keypoints": kp, "num_keypoints": n_labelled, "area": float(box[2] * box[3]), "bbox": box})
    # detections: near the people, spread over and beyond the zero-labelled GT's expanded box
    # (x in [90, 180], y in [70, 190]), one far outside it, one sitting exactly on its edges
    dets = [base + rng.normal(0, s, (17, 2)) for s in (1.0, 5.0, 20.0, 60.0)]
    dets.append(rng.uniform(0, 400, (17, 2)))
    dets.append(np.tile([[90.0, 70.0]], (17, 1)) + np.array([[0.0, 0.0], [90.0, 120.0]] * 8 + [[45.0, 60.0]]))
    scores = rng.permutation(len(dets)) / len(dets) + 0.05
    results = [{"keypoints": np.concatenate([d, np.ones((17, 1))], 1).reshape(-1).tolist(), "score": float(s)}
               for d, s in zip(dets, scores, strict=True)]
    expect = _pycocotools_oks(gts, results)
    order = np.argsort(-scores, kind="mergesort")
    got = np.array([[oks(np.reshape(g["keypoints"], (17, 3))[:, :2], dets[i], g["area"],
                         vis=np.reshape(g["keypoints"], (17, 3))[:, 2], box=g["bbox"]) for g in gts] for i in order])
    assert expect.shape == got.shape == (6, 3)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-15)
    fallback = got[:, 2]
    assert 0.0 < fallback.min() < 0.5 and fallback[list(order).index(5)] == pytest.approx(1.0)  # edges: d = 0
    # the same comparison in posereg pixels (+0.5): shift the keypoints and the box origin together
    g0 = np.reshape(gts[2]["keypoints"], (17, 3))
    shifted_box = np.asarray(gts[2]["bbox"]) + [0.5, 0.5, 0.0, 0.0]
    assert oks(g0[:, :2] + 0.5, dets[3] + 0.5, gts[2]["area"], vis=g0[:, 2], box=shifted_box) == pytest.approx(
        oks(g0[:, :2], dets[3], gts[2]["area"], vis=g0[:, 2], box=gts[2]["bbox"]), rel=1e-12)
    with pytest.raises(ValueError, match="box"):
        oks(g0[:, :2], dets[0], gts[2]["area"], vis=g0[:, 2])
