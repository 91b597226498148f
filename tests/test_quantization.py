"""Quantization analysis: argmax error matches the analytic voxel-centre error (SSP-Net Table 4 trend)."""

from __future__ import annotations

import pytest
import torch

from posereg.errors import ConfigError
from posereg.ops.quantization import CUBE_MEAN_DIST, analytic_voxel_error_mm, quantization_table


def test_cube_constant_by_monte_carlo() -> None:
    g = torch.Generator().manual_seed(0)
    d = (torch.rand(200000, 3, generator=g, dtype=torch.float64) - 0.5).norm(dim=-1).mean().item()
    assert d == pytest.approx(CUBE_MEAN_DIST, abs=2e-3)
    assert analytic_voxel_error_mm(16) == pytest.approx(0.480296 * 125.0)


def test_argmax_matches_analytic_and_splat_is_exact() -> None:
    g = torch.Generator().manual_seed(1)
    poses = (torch.rand(120, 17, 3, generator=g) - 0.5) * 2000.0
    rows = quantization_table(poses, sizes=(4, 8, 16, 32))
    assert [r["size"] for r in rows] == [4, 8, 16, 32]
    for r in rows:
        assert r["n_points"] == 120 * 17 and r["n_outside"] == 0
        assert r["analytic_mm"] == pytest.approx(CUBE_MEAN_DIST * 2000.0 / r["size"])
        # within a few mm (3 %) of 0.4803 * 2000 / s
        assert abs(r["argmax_mm"] - r["analytic_mm"]) < 0.03 * r["analytic_mm"]
        # soft-argmax has no quantization floor: far below argmax at every size
        assert r["soft_argmax_splat_mm"] < 0.5 * r["argmax_mm"]
    # paper trend: argmax error halves when the grid doubles
    for a, b in zip(rows, rows[1:], strict=False):
        assert b["argmax_mm"] / a["argmax_mm"] == pytest.approx(0.5, abs=0.03)


def test_interior_points_soft_argmax_exact_and_outside_counted() -> None:
    g = torch.Generator().manual_seed(2)
    # inside the hull of the cell centres of an 8^3 grid: |x| < 1000 - 125 mm
    poses = (torch.rand(50, 4, 3, generator=g) - 0.5) * 1700.0
    poses[0, 0] = torch.tensor([1200.0, 0.0, 0.0])  # outside the 2 m cube
    (row,) = quantization_table(poses, sizes=(8,))
    assert row["n_outside"] == 1 and row["n_points"] == 199
    assert row["soft_argmax_splat_mm"] < 0.01
    assert row["soft_argmax_mm"] < 0.2 * row["argmax_mm"]


def test_bad_poses_raise() -> None:
    with pytest.raises(ConfigError, match="N,J,3"):
        quantization_table(torch.zeros(5, 3))


def test_quantization_bench_rows_carry_paper_numbers() -> None:
    from posereg.bench.ops import run_quantization_bench

    rows = run_quantization_bench(n=8, seed=0, sizes=(4, 16))
    assert [r["paper_argmax_mm"] for r in rows] == [233.9, 59.9]
    assert [r["paper_soft_argmax_net_mm"] for r in rows] == [53.0, 51.4]
    for r in rows:
        assert r["n_points"] + r["n_outside"] == 8 * 17
        assert r["soft_argmax_splat_mm"] < r["argmax_mm"]
