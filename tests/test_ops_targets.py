"""Heat-map targets: hand values, axis order, outside/NaN handling, brute-force agreement."""

from __future__ import annotations

import math

import pytest
import torch

from posereg.errors import ConfigError
from posereg.ops import (
    argmax_decode,
    disk_heatmaps,
    gaussian_heatmaps,
    onehot_heatmaps,
    onehot_indices,
    soft_argmax,
)


def test_gaussian_peak_and_neighbours_by_hand() -> None:
    c = torch.tensor([[[2.5 / 8, 5.5 / 8]]])  # cell (x=2, y=5) centre
    g = gaussian_heatmaps(c, (8, 8), sigma=2.0)
    assert g.shape == (1, 1, 8, 8)
    assert g[0, 0, 5, 2] == pytest.approx(1.0)
    assert g[0, 0, 5, 3] == pytest.approx(math.exp(-1 / 8))
    assert g[0, 0, 4, 3] == pytest.approx(math.exp(-2 / 8))
    assert g[0, 0, 5, 0] == pytest.approx(math.exp(-4 / 8))
    p = gaussian_heatmaps(c, (8, 8), sigma=2.0, normalize_peak=False)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(p / p.max(), g)


def test_gaussian_3d_matches_brute_force_and_axis_order() -> None:
    g = torch.Generator().manual_seed(0)
    coords = torch.rand(2, 3, 3, generator=g, dtype=torch.float64)
    size = (4, 6, 8)  # D, H, W
    maps = gaussian_heatmaps(coords, size, sigma=1.3)
    assert maps.shape == (2, 3, 4, 6, 8) and maps.dtype == torch.float64
    zz, yy, xx = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) + 0.5 for n in size), indexing="ij")
    for b in range(2):
        for j in range(3):
            x, y, z = (coords[b, j] * torch.tensor([8, 6, 4], dtype=torch.float64)).tolist()
            ref = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * 1.3**2))
            assert torch.allclose(maps[b, j], ref, atol=1e-12)


def test_outside_and_nan_give_empty_maps() -> None:
    c = torch.tensor([[[0.5, 0.5], [1.0, 0.5], [-0.01, 0.5], [float("nan"), 0.5]]])
    size = (8, 8)
    for maps in (gaussian_heatmaps(c, size, 1.0), onehot_heatmaps(c, size), disk_heatmaps(c, size, 1.0)):
        assert maps[0, 0].sum() > 0
        assert torch.all(maps[0, 1:] == 0)
    assert onehot_indices(c, (8, 8)).tolist() == [[36, -1, -1, -1]]
    norm = gaussian_heatmaps(c, (8, 8), 1.0, normalize_peak=False)
    assert torch.isfinite(norm).all() and torch.all(norm[0, 1:] == 0)


def test_onehot_indices_by_hand() -> None:
    # cell j covers [j/w, (j+1)/w): 0.125 is the left edge of cell 1, 0.9999 is in the last cell
    c = torch.tensor([[[0.3, 0.6], [0.125, 0.0], [0.9999, 0.9999]]])
    assert onehot_indices(c, (8, 8)).tolist() == [[4 * 8 + 2, 1, 63]]
    c3 = torch.tensor([[[0.7, 0.2, 0.4]]])  # x cell 5 of 8, y cell 1 of 6, z cell 1 of 4
    assert onehot_indices(c3, (4, 6, 8)).item() == (1 * 6 + 1) * 8 + 5
    oh = onehot_heatmaps(c3, (4, 6, 8))
    assert oh.sum() == 1 and oh[0, 0, 1, 1, 5] == 1


def test_disk_cell_counts() -> None:
    c = torch.tensor([[[4.5 / 10, 4.5 / 10]]])
    assert disk_heatmaps(c, (10, 10), 0.0).sum() == 1
    assert disk_heatmaps(c, (10, 10), 1.0).sum() == 5
    assert disk_heatmaps(c, (10, 10), 1.5).sum() == 9
    assert disk_heatmaps(torch.tensor([[[0.45, 0.45, 0.45]]]), (10, 10, 10), 1.0).sum() == 7


def test_target_round_trips_through_decoders() -> None:
    g = torch.Generator().manual_seed(3)
    # interior points, > 5 sigma from the borders, so the Gaussian is not truncated
    coords = 0.3 + 0.4 * torch.rand(2, 5, 2, generator=g)
    logits = torch.log(gaussian_heatmaps(coords, (32, 32), sigma=1.0).clamp_min(1e-30))
    assert (soft_argmax(logits) - coords).abs().max() < 1e-4
    cells = onehot_indices(coords, (32, 32))
    dec = argmax_decode(logits)
    assert torch.equal(onehot_indices(dec, (32, 32)), cells)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ConfigError, match="do not match"):
        gaussian_heatmaps(torch.zeros(1, 1, 3), (8, 8), 1.0)
    with pytest.raises(ConfigError, match="sigma"):
        gaussian_heatmaps(torch.zeros(1, 1, 2), (8, 8), 0.0)
