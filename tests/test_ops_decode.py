"""Argmax decoding: exact at cell centres, analytic quantization error, quarter-offset rule."""

from __future__ import annotations

import torch

from posereg.ops import argmax_decode, argmax_decode_quarter_offset, gaussian_heatmaps

# Mean distance from the centre of a unit cube to a uniform point in it.
CUBE_MEAN_DIST = 0.480296


def test_cell_centres_decoded_exactly() -> None:
    jx, jy, jz = torch.tensor([[0, 7, 3]]), torch.tensor([[5, 0, 2]]), torch.tensor([[1, 3, 0]])
    c2 = torch.stack([(jx + 0.5) / 8, (jy + 0.5) / 6], dim=-1)
    assert torch.equal(argmax_decode(gaussian_heatmaps(c2, (6, 8), 1.0)), c2)
    c3 = torch.stack([(jx + 0.5) / 8, (jy + 0.5) / 6, (jz + 0.5) / 4], dim=-1)
    assert torch.equal(argmax_decode(gaussian_heatmaps(c3, (4, 6, 8), 1.0)), c3)


def test_random_locations_match_analytic_quantization_error() -> None:
    g = torch.Generator().manual_seed(0)
    w = 8
    c2 = torch.rand(1, 20000, 2, generator=g)
    err2 = (argmax_decode(gaussian_heatmaps(c2, (w, w), 0.5)) - c2).abs()
    # uniform offset within a cell: mean |dx| = cell / 4 per axis
    assert torch.allclose(err2.mean(dim=(0, 1)), torch.full((2,), 1 / (4 * w)), rtol=0.03)
    c3 = torch.rand(1, 6000, 3, generator=g)
    err3 = (argmax_decode(gaussian_heatmaps(c3, (w, w, w), 0.5)) - c3).norm(dim=-1).mean()
    assert abs(err3.item() - CUBE_MEAN_DIST / w) < 0.03 * CUBE_MEAN_DIST / w


def test_quarter_offset_by_hand() -> None:
    m = torch.zeros(1, 2, 5, 8)
    m[0, 0, 2, 3] = 1.0
    m[0, 0, 2, 4] = 0.5  # right neighbour higher: x shifts +1/4 cell
    m[0, 0, 1, 3] = 0.2
    m[0, 0, 3, 3] = 0.2  # equal vertical neighbours: y stays
    m[0, 1, 4, 0] = 1.0  # corner peak: neighbours outside the map, no shift
    m[0, 1, 3, 0] = 0.5
    out = argmax_decode_quarter_offset(m)
    assert torch.allclose(out[0, 0], torch.tensor([3.75 / 8, 2.5 / 5]))
    assert torch.allclose(out[0, 1], torch.tensor([0.5 / 8, 4.5 / 5]))
    v = torch.zeros(1, 1, 4, 4, 4)
    v[0, 0, 1, 2, 2] = 1.0
    v[0, 0, 0, 2, 2] = 0.3  # lower z neighbour higher: z shifts -1/4
    assert torch.allclose(argmax_decode_quarter_offset(v)[0, 0], torch.tensor([2.5 / 4, 2.5 / 4, 1.25 / 4]))


def test_quarter_offset_halves_interior_error() -> None:
    # offset f uniform in [0, 1/2) cell toward a neighbour: |f - 1/4| has mean 1/8 cell (vs 1/4 plain)
    g = torch.Generator().manual_seed(1)
    w = 16
    c = (2 + (w - 4) * torch.rand(1, 20000, 2, generator=g)) / w
    err = (argmax_decode_quarter_offset(gaussian_heatmaps(c, (w, w), 1.0)) - c).abs().mean()
    assert abs(err.item() - 1 / (8 * w)) < 0.03 / (8 * w)
