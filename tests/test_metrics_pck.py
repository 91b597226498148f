"""PCKh / PCK / AUC / PCP: brute-force loops and hand-computed cases."""

from __future__ import annotations

import json
import math

import pytest
import torch

from posereg.errors import ConfigError
from posereg.metrics import PCK, PCKh
from posereg.metrics import functional as F
from posereg.skeletons import get_joint_set

MPII = get_joint_set("mpii16")


def _brute_pckh(pred, gt, mask, head, thr, joints):
    """Python-loop PCKh: pooled percent over the given joints, ties correct."""
    correct = total = 0
    for b in range(gt.shape[0]):
        for j in joints:
            if not mask[b, j]:
                continue
            dx = float(pred[b, j, 0]) - float(gt[b, j, 0])
            dy = float(pred[b, j, 1]) - float(gt[b, j, 1])
            total += 1
            correct += math.sqrt(dx * dx + dy * dy) / float(head[b]) <= thr
    return 100.0 * correct / total


def _random(b=7, j=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, j, 2, generator=g, dtype=torch.float64) * 200
    pred = gt + torch.randn(b, j, 2, generator=g, dtype=torch.float64) * 6
    mask = torch.rand(b, j, generator=g) > 0.2
    head = 10 + torch.rand(b, generator=g, dtype=torch.float64) * 30
    return pred, gt, mask, head


def test_pckh_matches_brute_force_loop():
    pred, gt, mask, head = _random()
    metric = PCKh()
    metric.update(pred[:3], gt[:3], mask[:3], head[:3])
    metric.update(pred[3:], gt[3:], mask[3:], head[3:])
    out = metric.compute()
    joints14 = [j for j in range(16) if j not in (6, 7)]
    for thr in (0.5, 0.1):
        expect = _brute_pckh(pred, gt, mask, head, thr, joints14)
        assert float(out[f"pckh@{thr:g}"]) == pytest.approx(expect, abs=1e-9)
        assert float(F.pckh(pred, gt, mask, head, thr)) == pytest.approx(expect, abs=1e-9)
    curve = out["pckh_curve"]
    assert curve.shape == (51,)
    for k in (0, 7, 25, 50):
        assert float(curve[k]) == pytest.approx(_brute_pckh(pred, gt, mask, head, k / 100, joints14), abs=1e-9)
    assert float(out["auc"]) == pytest.approx(float(curve.mean()), abs=1e-12)
    # per part: mean of the two per-joint PCKh values
    wrists = [_brute_pckh(pred, gt, mask, head, 0.5, [j]) for j in MPII.parts["wrist"]]
    assert float(out["pckh@0.5/wrist"]) == pytest.approx(sum(wrists) / 2, abs=1e-9)
    assert float(out["pckh@0.5/head"]) == pytest.approx(_brute_pckh(pred, gt, mask, head, 0.5, [9]), abs=1e-9)
    per_joint = F.pck_per_joint(pred, gt, mask, head, 0.5)
    for j in range(16):
        assert float(per_joint[j]) == pytest.approx(_brute_pckh(pred, gt, mask, head, 0.5, [j]), abs=1e-9)


def _hand_batch(offsets: dict[int, float], head: float = 10.0):
    """One MPII frame: GT at 100,100 for every joint; joint j moved right by offsets[j] px."""
    gt = torch.full((1, 16, 2), 100.0, dtype=torch.float64)
    pred = gt.clone()
    for j, dx in offsets.items():
        pred[0, j, 0] += dx
    return pred, gt, torch.tensor([head], dtype=torch.float64)


def test_pckh_ties_count_as_correct():
    # distance exactly 0.5 and 0.1 head sizes, via a 3-4-5 triangle for the first one
    pred, gt, head = _hand_batch({})
    pred[0, 0] += torch.tensor([3.0, 4.0])  # d = 5 = 0.5 * 10
    pred[0, 1, 0] += 1.0  # d = 1 = 0.1 * 10
    m = PCKh()
    m.update(pred, gt, None, head)
    out = m.compute()
    assert float(out["pckh@0.5"]) == 100.0
    assert float(out["pckh@0.1"]) == pytest.approx(100 * 13 / 14)  # joint 0 is at 0.5 > 0.1
    assert float(out["pckh_curve"][49]) == pytest.approx(100 * 13 / 14)  # 0.49 < 0.5


def test_pckh_invisible_joints_and_14_joint_pooling():
    # pelvis (6) and thorax (7) wrong: excluded from the total -> 100
    pred, gt, head = _hand_batch({6: 50.0, 7: 50.0})
    m = PCKh()
    m.update(pred, gt, None, head)
    assert float(m.compute()["pckh@0.5"]) == 100.0
    # a wrong wrist that is unlabelled is excluded from numerator and denominator
    pred, gt, head = _hand_batch({10: 50.0, 15: 50.0})
    mask = torch.ones(1, 16, dtype=torch.bool)
    mask[0, 10] = False
    m = PCKh()
    m.update(pred, gt, mask, head)
    out = m.compute()
    assert float(out["pckh@0.5"]) == pytest.approx(100 * 12 / 13)
    # r_wrist never labelled in the set: the wrist column is undefined (official tables), not l_wrist alone
    assert out["pckh@0.5/wrist"] is None
    # a joint set other than MPII-16 pools over all joints
    lsp = PCKh(joint_set="lsp14")
    lsp.update(pred[:, :14], gt[:, :14], None, head)
    assert float(lsp.compute()["pckh@0.5"]) == pytest.approx(100 * 13 / 14)  # joint 10 wrong, 15 not in it


def test_pckh_head_column_option():
    pred, gt, head = _hand_batch({8: 50.0})  # upper neck wrong, head top right
    a, b = PCKh(), PCKh(head_column="neck_head_top")
    for m in (a, b):
        m.update(pred, gt, None, head)
    assert float(a.compute()["pckh@0.5/head"]) == 100.0
    assert float(b.compute()["pckh@0.5/head"]) == 50.0
    with pytest.raises(ConfigError):
        PCKh(head_column="nose")


def test_pckh_update_from_batch_compares_in_image_pixels():
    # crop -> image: scale 2, translation (10, 20); crop head size 5 -> 10 image px
    a = torch.tensor([[[2.0, 0.0, 10.0], [0.0, 2.0, 20.0]]])
    gt_crop = torch.full((1, 16, 2), 30.0)
    gt_img = gt_crop * 2 + torch.tensor([10.0, 20.0])
    pred_img = gt_img.clone()
    pred_img[0, 0, 0] += 5.0  # 0.5 head sizes in the image: correct at 0.5 (tie), wrong at 0.1
    pred_img[0, 1, 0] += 6.0  # 0.6: wrong
    weights = torch.ones(1, 16, 3)
    batch = {"joints_2d": gt_crop, "crop_to_image": a, "head_size": torch.tensor([5.0]), "weights": weights}
    m = PCKh()
    m.update_from_batch({"joints_2d_image": pred_img, "joints_3d_cam": None, "joint_conf": None}, batch)
    out = m.compute()
    assert float(out["pckh@0.5"]) == pytest.approx(100 * 13 / 14)
    assert float(out["pckh@0.1"]) == pytest.approx(100 * 12 / 14)


def test_auc_mean_and_trapezoid_on_hand_curve():
    curve = torch.tensor([0.0, 100.0, 100.0])
    thr = [0.0, 0.25, 0.5]
    assert float(F.auc(curve)) == pytest.approx(200 / 3)
    assert float(F.auc(curve, thr, "trapezoid")) == pytest.approx((12.5 + 25.0) / 0.5)
    # every joint at 0.255 head sizes: curve 0 up to 0.25, 100 from 0.26 on
    pred, gt, head = _hand_batch({j: 2.55 for j in range(16)})
    mean_m, trap_m = PCKh(), PCKh(auc_method="trapezoid")
    for m in (mean_m, trap_m):
        m.update(pred, gt, None, head)
    assert float(mean_m.compute()["auc"]) == pytest.approx(100 * 25 / 51)
    assert float(trap_m.compute()["auc"]) == pytest.approx((0.5 * 0.01 * 100 + 0.24 * 100) / 0.5)


def test_generic_pck_torso_bbox_head():
    lsp = get_joint_set("lsp14")
    gt = torch.zeros(1, 14, 2)
    gt[0, lsp.index("l_shoulder")] = torch.tensor([0.0, 0.0])
    gt[0, lsp.index("r_hip")] = torch.tensor([30.0, 40.0])  # torso diameter 50 -> 0.2 * 50 = 10 px
    pred = gt.clone()
    pred[0, 0, 0] += 10.0  # tie: correct
    pred[0, 1, 0] += 10.5  # wrong
    batch = {"joints_2d": gt, "crop_to_image": torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]),
             "weights": torch.ones(1, 14, 3), "bbox": torch.tensor([[0.0, 0.0, 20.0, 100.0]]),
             "head_size": torch.tensor([21.0])}
    preds = {"joints_2d_image": pred}
    expect = {"torso": 100 * 13 / 14, "bbox": 100 * 13 / 14, "head": 100.0}  # bbox 100 * 0.1 = 10
    for norm, thr in (("torso", 0.2), ("bbox", 0.1), ("head", 0.5)):
        m = PCK(normalizer=norm, thresholds=(thr,))
        m.update_from_batch(preds, batch)
        assert float(m.compute()[f"pck@{thr:g}"]) == pytest.approx(expect[norm]), norm
    # no torso (a torso joint unlabelled): the frame is skipped
    batch["weights"][0, lsp.index("r_hip")] = 0
    m = PCK()
    m.update_from_batch(preds, batch)
    assert math.isnan(float(m.compute()["pck@0.2"]))


def test_pcp_hand_case():
    gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]])
    pred = gt.clone()
    pred[0, 2, 1] += 6.0  # limb (1,2) length 10: end 2 off by 6 > 5
    assert float(F.pcp(pred, gt, None, [(0, 1), (1, 2)])) == 50.0
    pred[0, 2, 1] = 5.0  # exactly alpha * length: correct
    assert float(F.pcp(pred, gt, None, [(0, 1), (1, 2)])) == 100.0


def _brute_part_columns(pred, gt, mask, head, thr, parts):
    """Python-loop per-part PCKh: per joint correct / labelled over the set, mean of the part's joints;
    NaN when a joint of the part is never labelled (HRNet / official MPII tables)."""
    out = {}
    for part, joints in parts.items():
        values = []
        for j in joints:
            correct = total = 0
            for b in range(gt.shape[0]):
                if mask[b, j]:
                    d = math.dist(pred[b, j].tolist(), gt[b, j].tolist()) / float(head[b])
                    total += 1
                    correct += d <= thr
            values.append(100.0 * correct / total if total else math.nan)
        out[part] = sum(values) / len(values)
    return out


def test_pckh_part_columns_are_undefined_when_a_joint_is_never_labelled():
    """Per-part columns = mean of per-joint PCKh over the set; None / NaN when one joint of the pair has no label."""
    pred, gt, mask, head = _random(b=12, seed=3)
    mask[:, MPII.index("r_wrist")] = False  # never labelled: wrist undefined
    mask[:, MPII.index("l_ankle")] = False  # never labelled: ankle undefined
    mask[4:, MPII.index("l_hip")] = False  # labelled in the first batch only: hip defined
    mask[:, MPII.index("pelvis")] = False
    batches = [slice(0, 4), slice(4, 9), slice(9, 12)]
    metric = PCKh(thresholds=(0.5, 0.1))
    for sl in batches:
        metric.update(pred[sl], gt[sl], mask[sl], head[sl])
    out = metric.compute()
    # two processes' states summed as DDP's dist_reduce_fx="sum" does give the same columns
    rank0, rank1 = PCKh(thresholds=(0.5, 0.1)), PCKh(thresholds=(0.5, 0.1))
    rank0.update(pred[:5], gt[:5], mask[:5], head[:5])
    rank1.update(pred[5:], gt[5:], mask[5:], head[5:])
    rank0.merge_state(rank1)
    merged = rank0.compute()
    joints14 = [j for j in range(16) if j not in (6, 7)]
    for thr in (0.5, 0.1):
        expect = _brute_part_columns(pred, gt, mask, head, thr, MPII.parts)
        functional = F.pckh_per_part(pred, gt, mask, head, MPII.parts, thr)
        assert set(functional) == set(expect) == {"head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"}
        for part, value in expect.items():
            key = f"pckh@{thr:g}/{part}"
            if math.isnan(value):
                assert part in ("wrist", "ankle")
                assert out[key] is None and merged[key] is None, key
                assert math.isnan(float(functional[part])), key
            else:
                assert float(out[key]) == pytest.approx(value, abs=1e-9), key
                assert float(merged[key]) == pytest.approx(value, abs=1e-9), key
                assert float(functional[part]) == pytest.approx(value, abs=1e-9), key
        # the pooled total, the curve and the AUC are unchanged: brute force over the 14 joints
        total = _brute_pckh(pred, gt, mask, head, thr, joints14)
        assert float(out[f"pckh@{thr:g}"]) == pytest.approx(total, abs=1e-9)
        assert float(merged[f"pckh@{thr:g}"]) == pytest.approx(total, abs=1e-9)
        assert float(F.pckh(pred, gt, mask, head, thr)) == pytest.approx(total, abs=1e-9)
    curve = [_brute_pckh(pred, gt, mask, head, k / 100, joints14) for k in range(51)]
    torch.testing.assert_close(out["pckh_curve"], torch.tensor(curve, dtype=torch.float64), rtol=0, atol=1e-9)
    assert float(out["auc"]) == pytest.approx(sum(curve) / 51, abs=1e-9)
    assert float(merged["auc"]) == pytest.approx(sum(curve) / 51, abs=1e-9)
    trap = PCKh(auc_method="trapezoid")
    trap.update(pred, gt, mask, head)
    area = sum((curve[k] + curve[k + 1]) / 2 * 0.01 for k in range(50)) / 0.5
    assert float(trap.compute()["auc"]) == pytest.approx(area, abs=1e-9)
    # part columns go to metrics.json extras as plain values (tensor.tolist()): undefined ones become
    # null, not a bare NaN token
    parts = {k: (v.tolist() if torch.is_tensor(v) else v) for k, v in out.items() if "/" in k}
    assert len(parts) == 14 and parts["pckh@0.5/wrist"] is None
    assert json.loads(json.dumps(parts, allow_nan=False))["pckh@0.1/ankle"] is None
