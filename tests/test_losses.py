"""Losses: hand-computed values, per-axis weights, the z-marginal rule for 2D samples, PoseLoss terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from posereg.codecs import CoordTargets, HeatmapCodec, HeatmapTargets
from posereg.errors import ConfigError
from posereg.losses import CoordLoss, GaussianHeatmapMSE, PoseLoss
from posereg.losses.terms import coord_loss, heatmap_loss

torch.set_num_threads(1)


def test_coord_loss_hand_values():
    pred = torch.tensor([[[0.5, 0.2, 0.9]], [[0.1, 0.1, 0.1]]])
    target = torch.tensor([[[0.3, 0.2, 0.5]], [[0.1, 0.4, 0.1]]])
    w = torch.tensor([[[1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0]]])
    # sum(|d| w) / B = (0.2 + 0 + 0 (z weight 0) + 0 + 0.3 + 0) / 2
    assert coord_loss(pred, target, w, "l1").item() == pytest.approx(0.25)
    assert coord_loss(pred, target, w, "l2").item() == pytest.approx((0.04 + 0.09) / 2)
    assert coord_loss(pred, target, w, "elastic").item() == pytest.approx((0.2 + 0.04 + 0.3 + 0.09) / 2)
    with pytest.raises(ConfigError):
        coord_loss(pred, target, w, "huber")


def test_two_d_samples_give_no_gradient_to_z():
    pred = torch.rand(4, 6, 3, requires_grad=True)
    target = torch.rand(4, 6, 3)
    w = torch.ones(4, 6, 3)
    w[2:, :, 2] = 0  # samples 2, 3 are 2D-only
    coord_loss(pred, target, w).backward()
    assert torch.all(pred.grad[2:, :, 2] == 0)
    assert torch.all(pred.grad[:2, :, 2].abs() == 0.25)  # d|x|/dx / B
    assert torch.all(pred.grad[2:, :, :2].abs() == 0.25)


def _volume_case(kind: str):
    g = torch.Generator().manual_seed(0)
    coords = torch.rand(4, 3, 3, generator=g) * 0.8 + 0.1
    w = torch.ones(4, 3, 3)
    w[2:, :, 2] = 0
    coords[2:, :, 2] = 0.5
    codec = HeatmapCodec({"mse": "gaussian", "ce": "onehot"}[kind], input_size=32, sigma=1.0)
    t = codec.encode(CoordTargets(coords, w), (6, 8, 8))
    maps = torch.randn(4, 3, 6, 8, 8, generator=g)
    return maps, t


@pytest.mark.parametrize("kind", ["mse", "ce"])
def test_heatmap_loss_of_two_d_samples_sees_only_the_z_marginal(kind):
    maps, t = _volume_case(kind)
    base = heatmap_loss(maps, t, kind)
    perm = torch.tensor([5, 3, 1, 0, 2, 4])
    shuffled_2d = maps.clone()
    shuffled_2d[2:] = maps[2:, :, perm]
    shuffled_3d = maps.clone()
    shuffled_3d[:2] = maps[:2, :, perm]
    # Re-ordering the depth of 2D-only samples leaves the loss unchanged; of 3D samples, it does not.
    assert heatmap_loss(shuffled_2d, t, kind).item() == pytest.approx(base.item(), rel=1e-6)
    assert abs(heatmap_loss(shuffled_3d, t, kind).item() - base.item()) > 1e-3
    # And the gradient of a 2D sample's volume is the same at every depth for the MSE (a function of sum_z).
    if kind == "mse":
        m = maps.clone().requires_grad_()
        heatmap_loss(m, t, kind).backward()
        grad = m.grad[2:]
        assert torch.allclose(grad, grad[:, :, :1].expand_as(grad))


def test_heatmap_loss_values_match_torch():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    idx = torch.tensor([[0, 7, 19], [3, -1, 11]])
    weight = torch.tensor([[1.0, 1.0, 0.5], [1.0, 1.0, 1.0]])
    ce = F.cross_entropy(logits.flatten(2).transpose(1, 2), idx.clamp_min(0), reduction="none")
    expected = (ce * weight * (idx >= 0)).sum() / 2
    assert heatmap_loss(logits, HeatmapTargets(idx, weight), "ce").item() == pytest.approx(expected.item(), rel=1e-6)
    target = torch.rand(2, 3, 4, 5, generator=g)
    mse = ((logits - target) ** 2).mean(dim=(2, 3))
    assert heatmap_loss(logits, HeatmapTargets(target, weight), "mse").item() == pytest.approx(
        ((mse * weight).sum() / 2).item(), rel=1e-6)
    bce = F.binary_cross_entropy_with_logits(logits, (target > 0.5).float(), reduction="none").mean(dim=(2, 3))
    assert heatmap_loss(logits, HeatmapTargets((target > 0.5).float(), weight), "bce").item() == pytest.approx(
        ((bce * weight).sum() / 2).item(), rel=1e-6)
    prob = torch.softmax(logits.flatten(2), -1)
    tn = target.flatten(2) / target.flatten(2).sum(-1, keepdim=True)
    sse = ((prob - tn) ** 2).sum(-1)
    got = heatmap_loss(logits, HeatmapTargets(tn.view_as(target), weight), "mse", space="prob")
    assert got.item() == pytest.approx(((sse * weight).sum() / 2).item(), rel=1e-5)


def test_pose_loss_terms_per_output_and_total():
    coords = torch.rand(2, 4, 2) * 0.8 + 0.1
    targets = CoordTargets(coords, torch.ones(2, 4, 2))
    loss = PoseLoss({"coord": CoordLoss("l1", weight=1.0),
                     "heatmap": GaussianHeatmapMSE(1.0, ramp="center", input_size=32, sigma=1.0, space="logits")})
    outs = [{"name": f"stage{k}", "coords": torch.rand(2, 4, 2), "maps": torch.randn(2, 4, 8, 8)} for k in (1, 2)]
    r = loss(outs, targets, {"coord": 2.0, "heatmap": 0.5})
    assert set(r) == {"total", "coord", "heatmap", "coord@stage1", "coord@stage2", "heatmap@stage1", "heatmap@stage2"}
    assert r["coord"].item() == pytest.approx(r["coord@stage1"].item() + r["coord@stage2"].item())
    assert r["total"].item() == pytest.approx(2.0 * r["coord"].item() + 0.5 * r["heatmap"].item(), rel=1e-6)
    only = loss(outs[:1], targets, {"coord": 0.0, "heatmap": 1.0})
    assert set(only) == {"total", "heatmap"}
    with pytest.raises(ConfigError, match="has no 'maps'"):
        loss([{"name": "out", "coords": coords}], targets, {"heatmap": 1.0})
