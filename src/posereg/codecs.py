"""Codecs: batch -> training targets (unit coordinates, heat maps) and outputs -> joints in image/camera space.

Encoding and decoding sit side by side so that each is the other's inverse (tests round-trip them):

* `CoordinateCodec` turns crop pixels / camera mm into unit coordinates (u = x/W_in, v = y/H_in,
  z_n = (z - root_depth)/depth_range + 0.5) and back, through `crop_to_image` and `back_project`.
* `HeatmapCodec` renders H1 (Gaussian), H2 (one-hot index) and H3 (disk) targets on the fly, on the
  batch's device, on the grid of the configured ramp (cell j stands for unit `to_unit(ramp_values[j])`).
* `MapDecoder` reads unit coordinates out of raw maps: `integral` (soft-argmax) or `argmax`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from posereg import ops
from posereg.errors import ConfigError
from posereg.geometry import apply_affine, back_project

HEATMAP_KINDS = ("gaussian", "onehot", "disk")


def input_hw(input_size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from an int (square) or an (H, W) pair."""
    if isinstance(input_size, int):
        return input_size, input_size
    h, w = (int(s) for s in input_size)
    return h, w


@dataclass
class CoordTargets:
    """Unit-coordinate targets (B,J,dims), their per-axis weights (B,J,dims) and the batch they came from."""

    coords: torch.Tensor
    weights: torch.Tensor
    batch: dict[str, Any] | None = None


@dataclass
class HeatmapTargets:
    """Heat-map targets for one map shape.

    `target` is a map (B,J,*size) or, for one-hot, a flat index (B,J). For volumes, 2D-only joints are
    supervised on the z-marginal instead: `marginal_target` is then the (B,J,H,W) map or H*W index.
    """

    target: torch.Tensor
    weight: torch.Tensor
    marginal_target: torch.Tensor | None = None
    marginal_weight: torch.Tensor | None = None


class CoordinateCodec:
    """Unit coordinates <-> crop pixels, original image pixels and camera millimetres."""

    def __init__(self, input_size: int | Sequence[int], dims: int = 2, depth_range: float = 2000.0):
        if dims not in (2, 3):
            raise ConfigError(f"dims must be 2 or 3, got {dims}")
        self.height, self.width = input_hw(input_size)
        self.dims = dims
        self.depth_range = float(depth_range)

    def encode(self, batch: dict[str, Any]) -> CoordTargets:
        """Unit-coordinate targets and weights of a batch; z of 2D-only joints is parked at 0.5 (weight 0)."""
        j2d = batch["joints_2d"]
        scale = j2d.new_tensor([self.width, self.height])
        xy = j2d / scale
        weights = batch["weights"][..., : self.dims].to(xy.dtype)
        if self.dims == 2:
            return CoordTargets(xy, weights, batch)
        z = (batch["joints_3d"][..., 2] - batch["root_depth"].to(xy.dtype)[:, None]) / self.depth_range + 0.5
        z = torch.where(weights[..., 2] > 0, z, torch.full_like(z, 0.5))
        return CoordTargets(torch.cat([xy, z.unsqueeze(-1)], dim=-1), weights, batch)

    def to_crop_pixels(self, coords_unit: torch.Tensor) -> torch.Tensor:
        """(B,J,2) crop pixels from unit coordinates."""
        return coords_unit[..., :2] * coords_unit.new_tensor([self.width, self.height])

    def decode(self, coords_unit: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor | None]:
        """Predictions for the metrics: crop and original-image pixels, camera mm (3D, with the GT root depth)."""
        crop = self.to_crop_pixels(coords_unit.float())
        image = apply_affine(batch["crop_to_image"].to(crop.dtype), crop)
        cam = None
        if self.dims == 3 and coords_unit.shape[-1] == 3:
            depth = batch["root_depth"].to(crop.dtype)[:, None] + (coords_unit[..., 2].float() - 0.5) * self.depth_range
            cam = back_project(crop, depth, batch["camera"].to(crop.dtype))
        return {"joints_2d": crop, "joints_2d_image": image, "joints_3d_cam": cam, "joint_conf": None}


def _ramp_line(ramp: str, w: int, like: torch.Tensor) -> tuple[float, float]:
    """(unit of cell 0, unit step per cell) of `ramp` on an axis of width w."""
    r = ops.to_unit(ops.ramp_values(w, ramp, dtype=torch.float64), ramp, w)
    if w == 1:
        return float(r[0]), 1.0
    return float(r[0]), float(r[1] - r[0])


def unit_to_grid(coords_unit: torch.Tensor, ramp: str, size_xyz: Sequence[int]) -> torch.Tensor:
    """Re-express unit coords on the cell-centre grid ((j+0.5)/w) that the target ops use."""
    out = []
    for k, w in enumerate(size_xyz):
        r0, step = _ramp_line(ramp, w, coords_unit)
        cell = (coords_unit[..., k] - r0) / step
        out.append((cell + 0.5) / w)
    return torch.stack(out, dim=-1)


def grid_to_unit(coords_grid: torch.Tensor, ramp: str, size_xyz: Sequence[int]) -> torch.Tensor:
    """Inverse of `unit_to_grid`: cell-centre grid coords to unit coords under `ramp`."""
    out = []
    for k, w in enumerate(size_xyz):
        r0, step = _ramp_line(ramp, w, coords_grid)
        cell = coords_grid[..., k] * w - 0.5
        out.append(r0 + cell * step)
    return torch.stack(out, dim=-1)


def _size_xyz(maps: torch.Tensor) -> list[int]:
    """Map widths ordered like the coordinates: (W, H) or (W, H, D)."""
    return list(maps.shape[2:])[::-1]


class MapDecoder(nn.Module):
    """Raw maps (B,J,H,W) / (B,J,D,H,W) -> unit coords (B,J,2|3), by soft-argmax or argmax."""

    def __init__(self, mode: str = "integral", ramp: str = "center", beta: float = 1.0):
        super().__init__()
        if mode not in ("integral", "argmax"):
            raise ConfigError(f"method.codec.decoder={mode!r} cannot decode maps: use integral or argmax")
        self.mode = mode
        self.ramp = ops.check_ramp(ramp)
        self.beta = float(beta)

    @property
    def differentiable(self) -> bool:
        """True when gradients flow from the coordinates to the maps."""
        return self.mode == "integral"

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Unit coordinates ordered (x, y[, z])."""
        if self.mode == "integral":
            values = ops.soft_argmax(maps, ramp=self.ramp, beta=self.beta)
            sizes = _size_xyz(maps)
            return torch.stack([ops.to_unit(values[..., k], self.ramp, w) for k, w in enumerate(sizes)], dim=-1)
        grid = ops.argmax_decode(maps.detach())
        if self.ramp == "center":
            return grid
        return grid_to_unit(grid, self.ramp, _size_xyz(maps))


class HeatmapCodec:
    """Heat-map targets from unit-coordinate targets, for maps of a given spatial size."""

    def __init__(
        self,
        kind: str,
        input_size: int | Sequence[int],
        ramp: str = "center",
        sigma: float = 1.0,
        radius: float = 15.0,
        normalize: bool = False,
    ):
        if kind not in HEATMAP_KINDS:
            raise ConfigError(f"heat-map target kind {kind!r} unknown: use one of {', '.join(HEATMAP_KINDS)}")
        self.kind = kind
        self.height, self.width = input_hw(input_size)
        self.ramp = ops.check_ramp(ramp)
        self.sigma = float(sigma)
        self.radius = float(radius)
        # normalize: Gaussians that sum to 1 over the map, the target of a softmax-normalized map.
        self.normalize = bool(normalize)

    def radius_cells(self, map_width: int) -> float:
        """The disk radius (given in input pixels) in cells of a map of width `map_width`."""
        return self.radius * map_width / self.width

    def _render(self, grid: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Target maps (or one-hot flat indices) for cell-centre-grid coords."""
        if self.kind == "gaussian":
            return ops.gaussian_heatmaps(grid, size, self.sigma, normalize_peak=not self.normalize)
        if self.kind == "onehot":
            return ops.onehot_indices(grid, size)
        return ops.disk_heatmaps(grid, size, self.radius_cells(size[-1]))

    def encode(self, targets: CoordTargets, size: Sequence[int]) -> HeatmapTargets:
        # Joints outside the map (or a 3D joint outside the depth range) get weight 0, not an empty target.
        """Targets for maps of spatial size (H,W) or (D,H,W); joints outside the map get weight 0."""
        size = [int(s) for s in size]
        nd = len(size)
        coords, weights = targets.coords[..., :nd], targets.weights
        grid = unit_to_grid(coords.detach(), self.ramp, size[::-1])
        w_xy = weights[..., :2].amin(dim=-1)
        inside = ops.inside_mask(grid).to(w_xy.dtype)
        target = self._render(grid, size)
        if nd == 2:
            return HeatmapTargets(target, w_xy * inside)
        if self.kind == "disk":
            raise ConfigError("disk (H3) heat maps are 2D only: use method=h1/h2/i1/i2 for 3D data")
        has_z = (weights[..., 2] > 0).to(w_xy.dtype)
        # 2D-only joints: supervise the projection of the volume (sum over z) with the projected target.
        if self.kind == "gaussian":
            marginal = target.sum(dim=2)
        else:
            marginal = ops.onehot_indices(grid[..., :2], size[1:])
        inside_2d = ops.inside_mask(grid[..., :2]).to(w_xy.dtype)
        return HeatmapTargets(target, w_xy * has_z * inside, marginal, w_xy * (1 - has_z) * inside_2d)
