"""MPJPE / PA-MPJPE / N-MPJPE / PCK3D / AUC3D: hand cases and scipy Procrustes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from posereg.errors import ConfigError
from posereg.metrics import MPJPE, PCK3D
from posereg.metrics import functional as F
from posereg.metrics.pck3d import subset_indices


def _poses(b=4, j=17, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(0, 300, size=(b, j, 3)))


def _scipy_pa(pred: np.ndarray, gt: np.ndarray, scale: bool = True) -> float:
    """Independent PA-MPJPE of one frame via scipy (valid when the optimal rotation has det +1)."""
    x, y = pred - pred.mean(0), gt - gt.mean(0)
    r, sv_sum = orthogonal_procrustes(x, y)  # minimizes ||x r - y||, reflections allowed
    assert np.linalg.det(r) > 0
    s = sv_sum / (x**2).sum() if scale else 1.0
    return float(np.linalg.norm(s * x @ r - y, axis=-1).mean())


def test_pa_mpjpe_zero_for_similarity_copy_nonzero_for_mirror():
    gt = _poses()
    rot = torch.from_numpy(Rotation.random(4, random_state=1).as_matrix())
    moved = 1.7 * torch.einsum("bij,bkj->bki", rot, gt) + torch.tensor([100.0, -50.0, 3000.0])
    assert float(F.pa_mpjpe(moved, gt)) < 1e-8
    assert float(F.mpjpe(moved, gt)) > 100
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])
    assert float(F.pa_mpjpe(mirrored, gt)) > 10.0
    # rigid fit: the scale stays, so a scaled copy keeps an error
    assert float(F.pa_mpjpe(moved, gt, scale=False)) > 10.0
    assert float(F.pa_mpjpe(torch.einsum("bij,bkj->bki", rot, gt), gt, scale=False)) < 1e-8


def test_pa_mpjpe_equals_scipy_procrustes():
    gt = _poses(seed=2)
    rot = torch.from_numpy(Rotation.random(4, random_state=3).as_matrix())
    noise = torch.from_numpy(np.random.default_rng(4).normal(0, 40, size=gt.shape))
    pred = 0.8 * torch.einsum("bij,bkj->bki", rot, gt + noise) + 500.0
    for scale in (True, False):
        expect = np.mean([_scipy_pa(pred[b].numpy(), gt[b].numpy(), scale) for b in range(4)])
        assert float(F.pa_mpjpe(pred, gt, scale=scale)) == pytest.approx(expect, rel=1e-9)


def test_pa_with_mask_fits_only_labelled_joints():
    gt = _poses(b=2, seed=5)
    pred = gt.clone()
    pred[:, 3] += 1000.0  # masked out: must not disturb the fit
    mask = torch.ones(2, 17, dtype=torch.bool)
    mask[:, 3] = False
    assert float(F.pa_mpjpe(pred, gt, mask)) < 1e-8


def test_n_mpjpe_hand_case():
    gt = torch.tensor([[[0.0, 0, 0], [10, 0, 0], [0, 10, 0]]])
    pred = torch.tensor([[[0.0, 0, 0], [20, 0, 0], [0, 0, 10]]])
    # s = <p,g>/<p,p> = 200 / 500 = 0.4 -> (8,0,0), (0,0,4): errors 0, 2, sqrt(116)
    assert float(F.n_scale(pred, gt)[0]) == pytest.approx(0.4)
    assert float(F.n_mpjpe(pred, gt)) == pytest.approx((2 + math.sqrt(116)) / 3)
    assert float(F.mpjpe(pred, gt)) == pytest.approx((10 + math.sqrt(200)) / 3)
    m = MPJPE()
    m.update(pred + 1000.0, gt - 7.0)  # root alignment removes both offsets
    out = m.compute()
    assert float(out["n_mpjpe"]) == pytest.approx((2 + math.sqrt(116)) / 3)
    assert float(out["mpjpe"]) == pytest.approx((10 + math.sqrt(200)) / 3)


def test_mpjpe_include_root_masks_and_per_action_means():
    gt = torch.zeros(3, 4, 3)
    pred = gt.clone()
    pred[0, 1:, 0] = 10.0  # frame 0: joints 1..3 off by 10 -> per-frame errors 0,10,10,10
    pred[1, 1:, 0] = 20.0
    pred[2, 1:, 0] = 40.0
    actions = ["Walking 1", "Walking", "Eating"]
    m = MPJPE()
    m.update(pred[:2], gt[:2], None, actions[:2])
    m.update(pred[2:], gt[2:], None, actions[2:])
    out = m.compute()
    assert float(out["mpjpe"]) == pytest.approx((30 + 60 + 120) / 12)  # pooled, root included
    assert float(out["mpjpe/Walking"]) == pytest.approx((30 + 60) / 8)
    assert float(out["mpjpe/Eating"]) == pytest.approx(120 / 4)
    assert float(out["mpjpe_action_mean"]) == pytest.approx(((30 + 60) / 8 + 30) / 2)
    no_root = MPJPE(include_root=False, actions=None)
    no_root.update(pred, gt)
    out = no_root.compute()
    assert float(out["mpjpe"]) == pytest.approx((30 + 60 + 120) / 9)
    assert "mpjpe_action_mean" not in out
    # 3D mask from weights; a frame whose root is unlabelled is skipped
    weights = torch.ones(3, 4, 3)
    weights[0, 0, 2] = 0
    weights[1, 2, 2] = 0
    batch = {"joints_3d": gt, "weights": weights, "meta": {"action": actions}}
    m = MPJPE()
    m.update_from_batch({"joints_3d_cam": pred}, batch)
    assert float(m.compute()["mpjpe"]) == pytest.approx((40 + 120) / 7)


def test_pck3d_auc3d_hand_cases():
    assert subset_indices("h36m17") == [10, 8, 14, 11, 15, 12, 16, 13, 1, 4, 2, 5, 3, 6]
    assert len(subset_indices("pa17j")) == 14 and 0 not in subset_indices("pa17j")
    gt = torch.zeros(1, 17, 3)
    pred = gt.clone()
    idx = subset_indices("h36m17")
    errs = [0.0, 50.0, 149.5, 150.0, 200.0] + [52.0] * 9
    for j, e in zip(idx, errs, strict=True):
        pred[0, j, 2] = e
    pred[0, 7] = 5000.0  # spine and nose are outside the 3DHP subset
    pred[0, 9] = 5000.0
    m = PCK3D()
    m.update(pred, gt)
    out = m.compute()
    assert float(out["pck3d"]) == pytest.approx(100 * 12 / 14)  # 150 and 200 fail (strict <)
    # per threshold t in 0..150 step 5 count errors < t, by hand per joint:
    # 0 -> 30 thresholds (5..150), 50 -> 20 (55..150), 149.5 -> 1 (150), 150/200 -> 0, 52 -> 20 each
    assert float(out["auc3d"]) == pytest.approx(100 * (30 + 20 + 1 + 0 + 0 + 9 * 20) / (14 * 31))
    assert float(out["mpjpe"]) == pytest.approx(sum(errs) / 14)
    assert float(F.pck3d(pred[:, idx], gt[:, idx])) == pytest.approx(100 * 12 / 14)
    assert float(F.auc3d(pred[:, idx], gt[:, idx])) == pytest.approx(float(out["auc3d"]))


def test_mpjpe_joint_subset_ignores_other_joints():
    import torch

    from posereg.metrics import MPJPE

    gt = torch.zeros(1, 18, 3, dtype=torch.float64)
    gt[0, :, 0] = torch.arange(18, dtype=torch.float64) * 100.0
    pred = gt.clone()
    pred[0, 17, 1] += 500.0  # only the appended thorax is wrong
    pred[0, 3, 2] += 36.0
    full, subset = MPJPE(actions=None), MPJPE(actions=None, joints=range(17))
    full.update(pred, gt)
    subset.update(pred, gt)
    assert abs(float(full.compute()["mpjpe"]) - (500.0 + 36.0) / 18) < 1e-9
    assert abs(float(subset.compute()["mpjpe"]) - 36.0 / 17) < 1e-9


def test_unlabelled_frames_with_non_finite_predictions_are_skipped():
    # a 2D-only sample (MPII in a Human3.6M + MPII batch) has no camera: its 3D prediction is nan/inf
    gt = _poses(b=3, seed=6)
    pred = gt + torch.from_numpy(np.random.default_rng(7).normal(0, 30, size=gt.shape))
    pred[1] = float("nan")
    pred[2, :, 0] = float("inf")
    weights = torch.ones(3, 17, 3, dtype=torch.float64)
    weights[1:, :, 2] = 0  # frames 1 and 2: no 3D label
    batch = {"joints_3d": gt, "weights": weights, "meta": {"action": ["Walking"] * 3}}
    first = {"joints_3d": gt[:1], "weights": weights[:1], "meta": {"action": ["Walking"]}}
    for make in (MPJPE, PCK3D):
        mixed, clean = make(), make()
        mixed.update_from_batch({"joints_3d_cam": pred}, batch)
        clean.update_from_batch({"joints_3d_cam": pred[:1]}, first)
        got, want = mixed.compute(), clean.compute()
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert math.isfinite(float(got[key])), (make.__name__, key)
            assert float(got[key]) == pytest.approx(float(value), rel=1e-12), (make.__name__, key)


def test_functional_mpjpe_family_ignores_nan_and_inf_in_masked_joints():
    """Masked-out joints holding NaN / inf / garbage change nothing: equal to the same data without them."""
    gt = _poses(b=5, seed=8)
    rot = torch.from_numpy(Rotation.random(5, random_state=9).as_matrix())
    noise = torch.from_numpy(np.random.default_rng(10).normal(0, 60, size=gt.shape))
    pred = 0.9 * torch.einsum("bij,bkj->bki", rot, gt + noise) + 250.0
    mask = torch.from_numpy(np.random.default_rng(11).random((5, 17)) > 0.3)
    mask[:, :4] = True  # at least 4 joints per frame for the fit
    mask[2] = True  # one frame fully labelled
    bad_pred, bad_gt = pred.clone(), gt.clone()
    out = ~mask
    bad_pred[out] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)
    bad_gt[out] = torch.tensor([float("inf"), 1e300, float("nan")], dtype=torch.float64)
    bad_gt[0, ~mask[0], 1] = -float("inf")
    # reference: each frame with its masked-out joints removed, pooled over (frame, joint) pairs
    keep = [mask[b].nonzero().reshape(-1) for b in range(5)]
    n = sum(len(k) for k in keep)
    ref = {name: sum(float(fn(pred[b : b + 1, k], gt[b : b + 1, k])) * len(k) for b, k in enumerate(keep)) / n
           for name, fn in (("mpjpe", F.mpjpe), ("pa_mpjpe", F.pa_mpjpe), ("n_mpjpe", F.n_mpjpe))}
    ref["pa_rigid"] = sum(float(F.pa_mpjpe(pred[b : b + 1, k], gt[b : b + 1, k], scale=False)) * len(k)
                          for b, k in enumerate(keep)) / n
    got = {"mpjpe": F.mpjpe(bad_pred, bad_gt, mask), "pa_mpjpe": F.pa_mpjpe(bad_pred, bad_gt, mask),
           "n_mpjpe": F.n_mpjpe(bad_pred, bad_gt, mask), "pa_rigid": F.pa_mpjpe(bad_pred, bad_gt, mask, scale=False)}
    for name, value in got.items():
        assert math.isfinite(float(value)), name
        assert float(value) == pytest.approx(ref[name], rel=1e-9), name
    # per frame: the Procrustes-aligned labelled joints and the N-MPJPE scale equal the clean fit
    aligned = F.procrustes_align(bad_pred, bad_gt, mask)
    scales = F.n_scale(bad_pred, bad_gt, mask)
    for b, k in enumerate(keep):
        clean = F.procrustes_align(pred[b : b + 1, k], gt[b : b + 1, k])[0]
        torch.testing.assert_close(aligned[b, k], clean, rtol=1e-9, atol=1e-6)
        assert float(scales[b]) == pytest.approx(float(F.n_scale(pred[b : b + 1, k], gt[b : b + 1, k])[0]), rel=1e-12)
    # 3D PCK / AUC on the same data (pooled counts over the kept pairs)
    flat_p = torch.cat([pred[b, k] for b, k in enumerate(keep)])[None]
    flat_g = torch.cat([gt[b, k] for b, k in enumerate(keep)])[None]
    for thr in (100.0, 150.0):
        assert float(F.pck3d(bad_pred, bad_gt, mask, thr)) == pytest.approx(float(F.pck3d(flat_p, flat_g, None, thr)))
    assert float(F.auc3d(bad_pred, bad_gt, mask)) == pytest.approx(float(F.auc3d(flat_p, flat_g)))
    assert float(F.mpjpe(flat_p, flat_g)) == pytest.approx(ref["mpjpe"], rel=1e-12)


def test_mpjpe_per_joint_names_masks_and_accumulates():
    gt = torch.zeros(2, 17, 3)
    pred = gt.clone()
    pred[0, 3, 0], pred[1, 3, 0] = 10.0, 30.0  # r_ankle: 10 and 30 mm
    pred[0, 16, 1], pred[1, 16, 1] = 4.0, 99.0  # r_wrist: 4 mm; frame 1 unlabelled there
    mask = torch.ones(2, 17, dtype=torch.bool)
    mask[1, 16] = False
    m = MPJPE(actions=None, joint_set="h36m17")
    m.update(pred[:1], gt[:1], mask[:1])  # two updates (or two ranks) sum the same states
    m.update(pred[1:], gt[1:], mask[1:])
    out = m.compute()
    per_joint = {k: float(v) for k, v in out.items() if k.startswith("mpjpe_joint/")}
    assert len(per_joint) == 17
    assert per_joint["mpjpe_joint/r_ankle"] == pytest.approx(20.0)
    assert per_joint["mpjpe_joint/r_wrist"] == pytest.approx(4.0)
    assert per_joint["mpjpe_joint/pelvis"] == 0.0 and per_joint["mpjpe_joint/l_knee"] == 0.0
    assert float(out["mpjpe"]) == pytest.approx((10 + 30 + 4) / 33)  # pooled = count-weighted per-joint mean
    unnamed = MPJPE(actions=None, joints=[0, 3])
    unnamed.update(pred, gt, mask)
    out = unnamed.compute()
    assert sorted(k for k in out if k.startswith("mpjpe_joint/")) == ["mpjpe_joint/j0", "mpjpe_joint/j3"]
    assert float(out["mpjpe_joint/j3"]) == pytest.approx(20.0)
    off = MPJPE(actions=None, per_joint=False)
    off.update(pred, gt, mask)
    assert not any(k.startswith("mpjpe_joint/") for k in off.compute())
    with pytest.raises(ConfigError, match="MPJPE.joint_set='h36m18' has 18 joints, the poses 17"):
        MPJPE(joint_set="h36m18").update(pred, gt, mask)
