"""LSP / LSP-extended adapter on small joints.mat fixtures: both layouts, conversion, splits, PCK@0.2 and PCP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from torch.utils.data import default_collate

from posereg.data import lsp
from posereg.errors import ConfigError
from posereg.metrics.batch import gt_2d_image
from posereg.metrics.lsp import lsp_pck


def make_lsp(root: Path, n: int, extended: bool, seed: int = 0) -> np.ndarray:
    """joints.mat in the LSP (3x14xN) or LSP-extended (14x3xN) layout plus n tiny images; returns (N,14,3)."""
    rng = np.random.default_rng(seed)
    j = np.zeros((n, 14, 3))
    j[..., 0] = rng.uniform(10, 70, (n, 14))
    j[..., 1] = rng.uniform(10, 90, (n, 14))
    j[..., 2] = rng.integers(0, 2, (n, 14))
    savemat(str(root / "joints.mat"), {"joints": np.transpose(j, (1, 2, 0)) if extended
                                       else np.transpose(j, (2, 1, 0))})
    (root / "images").mkdir()
    img = Image.new("RGB", (80, 100), (120, 60, 30))
    for i in range(n):
        img.save(root / "images" / (f"im{i + 1:05d}.jpg" if extended else f"im{i + 1:04d}.jpg"))
    return j


def test_lsp_layout_splits_and_conversion(tmp_path):
    j = make_lsp(tmp_path, 2000, extended=False)
    train = lsp.load_records(tmp_path, split="train")
    test = lsp.load_records(tmp_path, split="test")
    assert len(train) == len(test) == 1000
    r = test[0]
    assert r.meta["image"] == "im1001.jpg" and r.meta["centric"] == "person"
    np.testing.assert_allclose(r.joints_2d, j[1000, :, :2] - 0.5)
    assert r.visible.sum() == 14  # occluded LSP joints are annotated too
    np.testing.assert_allclose(r.center, [40, 50])
    assert r.box_size.tolist() == [100, 100]


def test_lsp_extended_layout(tmp_path):
    j = make_lsp(tmp_path, 6, extended=True)
    recs = lsp.load_records(tmp_path, split="train", box="joints")
    assert [r.meta["dataset"] for r in recs] == ["lspet"] * 6
    np.testing.assert_array_equal(recs[2].visible, j[2, :, 2])
    vis = j[0, :, 2] > 0
    lo, hi = (j[0, vis, :2] - 0.5).min(0), (j[0, vis, :2] - 0.5).max(0)
    np.testing.assert_allclose(recs[0].center, (lo + hi) / 2)
    assert recs[0].box_size[0] == pytest.approx((hi - lo).max() * 1.25)
    with pytest.raises(ConfigError, match="no test split"):
        lsp.load_records(tmp_path, split="test")
    with pytest.raises(Exception, match="LSP-extended"):
        lsp.load_records(tmp_path, split="train", extended=False)


def test_pck_and_pcp_perfect_and_wrong(tmp_path):
    make_lsp(tmp_path, 8, extended=True, seed=3)
    ds = lsp.LSPDataset(tmp_path, split="train", input_size=32, box="joints")
    batch = default_collate([ds[i] for i in range(len(ds))])
    gt = gt_2d_image(batch)
    m = lsp_pck(centric="observer")
    m.update_from_batch({"joints_2d_image": gt}, batch)
    out = m.compute()
    assert float(out["pck_oc@0.2"]) == pytest.approx(100.0) and float(out["pcp_oc"]) == pytest.approx(100.0)
    m = lsp_pck()
    m.update_from_batch({"joints_2d_image": gt + 1000.0}, batch)
    out = m.compute()
    assert float(out["pck_pc@0.2"]) == 0.0 and float(out["pcp_pc"]) == 0.0
    # hand example: one frame, only the right lower leg's ankle off by 0.6 x its length -> 1 of 9 segments wrong
    m = lsp_pck()
    g = torch.zeros(1, 14, 2)
    g[0, :, 0] = torch.arange(14) * 10.0
    g[0, :, 1] = torch.arange(14) * 7.0
    p = g.clone()
    p[0, 0] += 0.6 * torch.linalg.norm(g[0, 1] - g[0, 0])
    b = {"joints_2d": g, "crop_to_image": torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]), "weights": torch.ones(1, 14, 3)}
    m.update_from_batch({"joints_2d_image": p}, b)
    assert float(m.compute()["pcp_pc"]) == pytest.approx(100 * 8 / 9)
    assert float(m.compute()["pcp_pc/lower_leg"]) == pytest.approx(50.0)


def test_lsp_trains_and_evaluates_end_to_end(tmp_path):
    # no real LSP slice ships with the repository: a joints.mat fixture stands in for the dataset
    import json

    from conftest import compose_config
    from posereg.recipes.train import train_task
    from posereg.runs import RunDir

    root = tmp_path / "lsp"
    root.mkdir()
    make_lsp(root, 2000, extended=False)
    cfg = compose_config(["debug=tiny", "logger=none", "data=lsp", f"data.root={root}",
                          f"paths.runs_dir={tmp_path / 'runs'}"])
    run = RunDir(tmp_path / "run")
    train_task(cfg, run_path=run.path, overrides=[], multirun=False)
    assert run.read_status()["status"] == "done"
    metrics = json.loads(run.metrics_file.read_text())
    assert metrics["monitor"] == "val/pck_pc@0.2"
    for block, stage in (("final", "val"), ("test", "test")):
        for name in ("pck_pc@0.2", "pcp_pc"):
            assert 0.0 <= metrics[block][f"{stage}/{name}"] <= 100.0
