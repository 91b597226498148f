"""Soft-argmax / integral op: sub-cell accuracy per ramp, formulations, gradients, numerics."""

from __future__ import annotations

import math

import pytest
import torch

from posereg.errors import ConfigError
from posereg.ops import (
    RAMPS,
    expectation,
    from_unit,
    marginals,
    ramp_values,
    soft_argmax,
    spatial_softmax,
    to_unit,
)


def _ramp_at(c: float, w: int, ramp: str) -> float:
    """Ramp value at continuous cell index c, by the defining formulas."""
    return {"center": (c + 0.5) / w, "index": c / w - 0.5, "linspace01": c / (w - 1)}[ramp]


def _splat_1d(c: float, w: int) -> torch.Tensor:
    """Linear split of unit mass between the two cells around continuous index c (float64)."""
    p = torch.zeros(w, dtype=torch.float64)
    j = math.floor(c)
    f = c - j
    p[j] = 1 - f
    if f > 0:
        p[j + 1] = f
    return p


def _outer(ps: list[torch.Tensor]) -> torch.Tensor:
    out = ps[0]
    for p in ps[1:]:
        out = out.unsqueeze(-1) * p
    return out


def test_ramp_values_by_hand() -> None:
    assert torch.allclose(ramp_values(4, "center"), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(ramp_values(4, "index"), torch.tensor([-0.5, -0.25, 0.0, 0.25]))
    assert torch.allclose(ramp_values(4, "linspace01"), torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    assert ramp_values(3, "center", dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("ramp", RAMPS)
def test_unit_round_trip(ramp: str) -> None:
    u = torch.rand(10)
    assert torch.allclose(to_unit(from_unit(u, ramp, 16), ramp, 16), u)
    # the center ramp is the unit scale itself; index is shifted by 0.5
    shift = {"center": 0.0, "index": 0.5, "linspace01": 0.0}[ramp]
    r = ramp_values(16, ramp)
    assert torch.allclose(to_unit(r, ramp, 16) - r, torch.tensor(shift))


def test_unknown_ramp_and_bad_shape_raise() -> None:
    with pytest.raises(ConfigError, match="ramp"):
        soft_argmax(torch.zeros(1, 1, 4, 4), ramp="pixel")
    with pytest.raises(ConfigError, match="B,J,H,W"):
        soft_argmax(torch.zeros(4, 4, 4))


@pytest.mark.parametrize("ramp", RAMPS)
@pytest.mark.parametrize("ndim", [2, 3])
def test_subcell_delta_recovered(ramp: str, ndim: int) -> None:
    # size ordered (D,)H,W; cell positions ordered the same way, coordinates come back as (x, y[, z])
    size = (12, 16, 20)[-ndim:]
    cells = (4.3, 9.71, 13.05)[-ndim:]
    prob = _outer([_splat_1d(c, n) for c, n in zip(cells, size, strict=True)])
    logits = torch.log(prob.clamp_min(1e-30)).float()[None, None]
    got = soft_argmax(logits, ramp=ramp)[0, 0]
    want = torch.tensor([_ramp_at(c, n, ramp) for c, n in zip(cells, size, strict=True)][::-1])
    assert got.shape == (ndim,)
    assert (got - want).abs().max() < 1e-4


@pytest.mark.parametrize("ramp", RAMPS)
@pytest.mark.parametrize("ndim", [2, 3])
def test_sharp_gaussian_recovered(ramp: str, ndim: int) -> None:
    size = (24, 28, 32)[-ndim:]
    cells = (11.37, 13.8, 15.42)[-ndim:]
    d2 = 0
    for k, (c, n) in enumerate(zip(cells, size, strict=True)):
        sq = (torch.arange(n, dtype=torch.float32) - c) ** 2
        d2 = d2 + sq.reshape((1,) * k + (n,) + (1,) * (ndim - k - 1))
    sigma = 1.0
    # beta = 1/sigma^2 turns -d^2/2 into the log of a Gaussian of std sigma cells
    got = soft_argmax((-d2 / 2)[None, None], ramp=ramp, beta=1 / sigma**2)[0, 0]
    want = torch.tensor([_ramp_at(c, n, ramp) for c, n in zip(cells, size, strict=True)][::-1])
    assert (got - want).abs().max() < 1e-4


@pytest.mark.parametrize("ramp", RAMPS)
def test_marginal_equals_direct_sum(ramp: str) -> None:
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 7, 9), (2, 2, 5, 6, 7)]:
        maps = torch.randn(shape, generator=g, dtype=torch.float64) * 3
        coords, prob = soft_argmax(maps, ramp=ramp, return_prob=True)
        axes = [ramp_values(n, ramp, dtype=torch.float64) for n in shape[2:]]
        grids = torch.meshgrid(*axes, indexing="ij")  # ordered like the map dims (z, y, x)
        direct = torch.stack([(prob * gr).sum(dim=tuple(range(2, len(shape)))) for gr in grids[::-1]], dim=-1)
        assert torch.allclose(coords, direct, atol=1e-12)
        assert torch.allclose(prob.flatten(2).sum(-1), torch.ones(shape[:2], dtype=torch.float64))


def test_marginals_and_expectation_by_hand() -> None:
    prob = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.4, 0.0]])[None, None]
    px, py = marginals(prob)
    assert torch.allclose(px[0, 0], torch.tensor([0.1, 0.6, 0.3]))
    assert torch.allclose(py[0, 0], torch.tensor([0.6, 0.4]))
    # center ramp of width 3: 1/6, 1/2, 5/6
    assert torch.allclose(expectation(px, "center")[0, 0], torch.tensor(0.1 / 6 + 0.6 / 2 + 0.3 * 5 / 6))
    assert torch.allclose(expectation(py, "linspace01")[0, 0], torch.tensor(0.4))


def test_uniform_map_centre_per_ramp() -> None:
    maps = torch.zeros(1, 1, 8, 8)
    assert torch.allclose(soft_argmax(maps, "center"), torch.full((1, 1, 2), 0.5))
    assert torch.allclose(soft_argmax(maps, "linspace01"), torch.full((1, 1, 2), 0.5))
    assert torch.allclose(soft_argmax(maps, "index"), torch.full((1, 1, 2), -1 / 16))


def test_beta_scales_logits() -> None:
    maps = torch.randn(2, 2, 6, 6)
    assert torch.allclose(soft_argmax(maps, beta=2.5), soft_argmax(maps * 2.5), atol=1e-6)
    assert torch.allclose(spatial_softmax(maps, 0.5), spatial_softmax(maps * 0.5), atol=1e-7)


@pytest.mark.parametrize("ramp", RAMPS)
def test_gradcheck_float64(ramp: str) -> None:
    g = torch.Generator().manual_seed(1)
    m2 = torch.randn(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    m3 = torch.randn(1, 1, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m: soft_argmax(m, ramp=ramp, beta=1.7), (m2,))
    assert torch.autograd.gradcheck(lambda m: soft_argmax(m, ramp=ramp), (m3,))


def test_huge_logits_no_nan() -> None:
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 2, 5] = 1e4
    maps[0, 1] = (torch.rand(8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1) * 1e4
    for m in (maps, maps.half(), maps.bfloat16()):
        m = m.clone().requires_grad_(True)
        coords = soft_argmax(m)
        coords.sum().backward()
        assert torch.isfinite(coords).all() and torch.isfinite(m.grad).all()
        assert coords.dtype == torch.float32
        assert torch.allclose(coords[0, 0], torch.tensor([5.5 / 8, 2.5 / 8]))
    vol = torch.full((1, 1, 4, 4, 4), -1e4)
    vol[0, 0, 1, 2, 3] = 1e4  # (z, y, x) = (1, 2, 3)
    coords3 = soft_argmax(vol)
    assert torch.allclose(coords3[0, 0], torch.tensor([3.5 / 4, 2.5 / 4, 1.5 / 4]))


def test_bf16_autocast_cpu() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps = conv(x) * 50
        assert maps.dtype == torch.bfloat16
        coords, prob = soft_argmax(maps, return_prob=True)
    assert coords.dtype == torch.float32 and prob.dtype == torch.float32
    ref = soft_argmax(maps.float())
    assert torch.allclose(coords, ref, atol=1e-6)
    coords.sum().backward()
    assert torch.isfinite(conv.weight.grad).all()
