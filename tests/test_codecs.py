"""Codecs: unit-coordinate targets, heat-map targets and decoders round-trip the ground truth."""

from __future__ import annotations

import pytest
import torch

from posereg import ops
from posereg.codecs import CoordinateCodec, CoordTargets, HeatmapCodec, MapDecoder, grid_to_unit, unit_to_grid
from posereg.errors import ConfigError
from posereg.geometry import project

torch.set_num_threads(1)


def _batch3d(b: int = 3, j: int = 5, size: int = 64) -> dict:
    """3D batch whose 2D labels are the projections of the 3D joints with the crop camera."""
    g = torch.Generator().manual_seed(0)
    root = torch.tensor([4000.0, 5200.0, 3100.0])[:b]
    j3d = torch.randn(b, j, 3, generator=g, dtype=torch.float64) * 200
    j3d[..., 2] += root[:, None].double()
    j3d[:, 0] = j3d[:, 0] * 0 + torch.stack([torch.zeros(b), torch.zeros(b), root], -1)
    camera = torch.tensor([[60.0, 62.0, 31.0, 33.0]] * b, dtype=torch.float64)
    j2d = project(j3d, camera)
    return {"joints_2d": j2d, "joints_3d": j3d, "root_depth": root.double(), "camera": camera,
            "weights": torch.ones(b, j, 3, dtype=torch.float64),
            "crop_to_image": torch.tensor([[[2.0, 0, 10], [0, 2.0, -4]]] * b, dtype=torch.float64)}


def test_coordinate_encode_hand_values():
    codec = CoordinateCodec(input_size=64, dims=3, depth_range=2000.0)
    batch = _batch3d()
    t = codec.encode(batch)
    assert torch.allclose(t.coords[..., 0], batch["joints_2d"][..., 0] / 64)
    # root at z_n = 0.5, a joint 500 mm behind the root at 0.75
    assert torch.allclose(t.coords[:, 0, 2], torch.full((3,), 0.5, dtype=torch.float64))
    batch["joints_3d"][0, 1, 2] = batch["root_depth"][0] + 500
    assert codec.encode(batch).coords[0, 1, 2].item() == pytest.approx(0.75)


def test_coordinate_round_trip_exact_to_image_and_camera():
    codec = CoordinateCodec(input_size=64, dims=3)
    batch = _batch3d()
    dec = codec.decode(codec.encode(batch).coords.double(), batch)
    assert torch.allclose(dec["joints_2d"].double(), batch["joints_2d"], atol=1e-4)
    expected_img = batch["joints_2d"] * 2 + torch.tensor([10.0, -4.0], dtype=torch.float64)
    assert torch.allclose(dec["joints_2d_image"].double(), expected_img, atol=1e-3)
    assert torch.allclose(dec["joints_3d_cam"].double(), batch["joints_3d"], atol=0.05)


def test_two_d_samples_park_z_at_half():
    codec = CoordinateCodec(input_size=64, dims=3)
    batch = _batch3d()
    batch["weights"][1, :, 2] = 0
    t = codec.encode(batch)
    assert torch.all(t.coords[1, :, 2] == 0.5) and torch.all(t.weights[1, :, 2] == 0)
    assert CoordinateCodec(64, dims=2).decode(t.coords[..., :2], batch)["joints_3d_cam"] is None


@pytest.mark.parametrize("ramp", ["center", "index", "linspace01"])
def test_grid_conversion_matches_ramp_values(ramp):
    w = 8
    units = ops.to_unit(ops.ramp_values(w, ramp), ramp, w)  # the unit each cell stands for
    coords = units.view(1, w, 1).expand(1, w, 2)
    grid = unit_to_grid(coords, ramp, [w, w])
    assert torch.allclose(grid[..., 0], (torch.arange(w) + 0.5) / w, atol=1e-6)
    assert torch.allclose(grid_to_unit(grid, ramp, [w, w]), coords, atol=1e-6)


@pytest.mark.parametrize("ramp", ["center", "index", "linspace01"])
@pytest.mark.parametrize("kind", ["gaussian", "onehot", "disk"])
def test_heatmap_encode_argmax_decode_within_half_cell(kind, ramp):
    g = torch.Generator().manual_seed(1)
    coords = torch.rand(2, 7, 2, generator=g) * 0.8 + 0.1
    codec = HeatmapCodec(kind, input_size=64, ramp=ramp, sigma=1.5, radius=6.0)
    size = (16, 12)  # (H, W): non-square on purpose
    t = codec.encode(CoordTargets(coords, torch.ones(2, 7, 2)), size)
    if kind == "onehot":
        maps = ops.onehot_heatmaps(unit_to_grid(coords, ramp, [12, 16]), size)
        assert torch.equal(maps.flatten(2).argmax(-1), t.target)
    else:
        maps = t.target
    if kind == "disk":
        # disk of 6 input px = 1.125 cells on a 12-wide map: a plus-shaped set; its centroid lies on the joint's cell.
        maps = maps + 1e-3 * ops.gaussian_heatmaps(unit_to_grid(coords, ramp, [12, 16]), size, 0.5)
    dec = MapDecoder("argmax", ramp=ramp)(maps)
    step = torch.tensor([1 / 11, 1 / 15]) if ramp == "linspace01" else torch.tensor([1 / 12, 1 / 16])
    # quantization bound: half a cell of the ramp's grid on each axis
    assert torch.all((dec - coords).abs() <= step * 0.5 + 1e-6), (dec - coords).abs().max()


def test_volume_gaussian_round_trip_and_marginal_targets():
    coords = torch.tensor([[[0.30, 0.60, 0.45], [0.71, 0.22, 0.80]]])
    w = torch.ones(1, 2, 3)
    w[0, 1, 2] = 0  # joint 1: 2D label only
    codec = HeatmapCodec("gaussian", input_size=64, sigma=1.0)
    t = codec.encode(CoordTargets(coords, w), (8, 16, 16))
    assert t.target.shape == (1, 2, 8, 16, 16) and t.marginal_target.shape == (1, 2, 16, 16)
    assert t.weight.tolist() == [[1.0, 0.0]] and t.marginal_weight.tolist() == [[0.0, 1.0]]
    dec = MapDecoder("argmax")(t.target)
    assert torch.all((dec[0, 0] - coords[0, 0]).abs() <= torch.tensor([1 / 32, 1 / 32, 1 / 16]) + 1e-6)
    onehot = HeatmapCodec("onehot", input_size=64).encode(CoordTargets(coords, w), (8, 16, 16))
    # the 2D joint's marginal index is its (y, x) cell on the 16x16 grid
    assert onehot.marginal_target[0, 1].item() == 3 * 16 + 11
    with pytest.raises(ConfigError, match="2D only"):
        HeatmapCodec("disk", input_size=64).encode(CoordTargets(coords, w), (8, 16, 16))


def test_integral_decoder_reads_ramp_units_of_peaked_maps():
    for ramp in ("center", "index", "linspace01"):
        maps = torch.full((1, 1, 6, 10), -1e4)
        maps[0, 0, 4, 7] = 0.0
        c = MapDecoder("integral", ramp=ramp)(maps)[0, 0]
        ux = ops.to_unit(ops.ramp_values(10, ramp), ramp, 10)[7]
        uy = ops.to_unit(ops.ramp_values(6, ramp), ramp, 6)[4]
        assert c.tolist() == pytest.approx([ux.item(), uy.item()], abs=1e-6)
    with pytest.raises(ConfigError):
        MapDecoder("integral", ramp="bogus")
