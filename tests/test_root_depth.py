"""SSP-Net §4.3.1 root-depth MLP wired into training and evaluation (method.root_depth)."""

from __future__ import annotations

import json

import pytest
import torch

from posereg.data.datamodule import DataInfo
from posereg.errors import ConfigError
from posereg.methods import build_module
from posereg.methods.root_depth import has_3d_root
from posereg.recipes.train import train_task
from posereg.runs import RunDir

SMALL = ["method=sspnet_small", "method.net.growth=8", "method.net.stem_channels=8", "method.net.num_pyramids=2"]
INFO3D = DataInfo("h36m17", 64, True, True, 2000.0, ("synth3d",))


def _batch(b: int = 4) -> dict[str, torch.Tensor]:
    weights = torch.ones(b, 17, 3)
    weights[0, :, 2] = 0  # a 2D-only sample: no root-depth label
    return {"image": torch.randn(b, 3, 64, 64), "camera": torch.tensor([[300.0, 300.0, 32.0, 32.0]] * b),
            "root_depth": torch.linspace(3000.0, 6000.0, b), "weights": weights}


def test_builds_on_the_configured_output_and_trains_only_the_mlp_from_detached_features(make_cfg):
    cfg = make_cfg("data=synth3d", *SMALL, "method.root_depth.enabled=true")
    module = build_module(cfg, INFO3D)
    est = module.root_depth
    assert module.output_names[est.feature_index] == "p1l3"
    batch = _batch()
    outputs = module(batch["image"])
    channels = outputs[est.feature_index]["features"].shape[1]
    assert est.mlp.mlp[0].in_features == channels + 4  # pooled F_1^3 + the 4 box features
    pred = est(outputs, batch["camera"])
    # zero-initialised last layer: the pinhole prior z = fx / W * 2 m for every sample
    torch.testing.assert_close(pred, torch.full((4,), 300.0 / 64 * 2000.0))
    loss = est.loss(pred, batch)
    expected = ((pred - batch["root_depth"]).abs()[1:] / 1000).mean()  # sample 0 has no 3D label
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is None for p in module.net.parameters())  # detached: the pose features are not steered
    assert all(p.grad is not None for p in est.mlp.parameters())


def test_eval_modes_decode_with_gt_or_estimated_root(make_cfg):
    batch = _batch()
    for mode, expect_estimate in (("gt", False), ("estimated", True)):
        module = build_module(make_cfg("data=synth3d", *SMALL, "method.root_depth.enabled=true",
                                       f"method.root_depth.eval={mode}"), INFO3D)
        est = module.root_depth
        root = batch["root_depth"] + 500.0
        decoding = est.decoding_batch(root, batch)
        torch.testing.assert_close(decoding["root_depth"], root if expect_estimate else batch["root_depth"])
        est.update_error("val", root, batch)
        assert float(est.errors["val"].compute()) == pytest.approx(500.0)
    assert has_3d_root(batch).tolist() == [False, True, True, True]


@pytest.mark.parametrize("overrides,match", [
    (["data=synth2d", "method.root_depth.enabled=true"], "needs 3D data"),
    (["data=synth3d", "method.root_depth.enabled=true", "method.root_depth.features=p9l9"], "not an output"),
    (["data=synth3d", "method.root_depth.enabled=true", "method.root_depth.eval=oracle"], "eval='oracle' unknown"),
    (["data=synth3d", "method.root_depth.enabled=true", "cut=p1l2"], "comes after the cut"),
])
def test_bad_settings_fail_with_the_setting_named(make_cfg, overrides, match):
    info = INFO3D if "data=synth3d" in overrides else DataInfo("mpii16", 64, True, False, 2000.0, ("synth2d",))
    with pytest.raises(ConfigError, match=match):
        build_module(make_cfg(*SMALL, *overrides), info)


def test_multistage_net_without_features_is_refused(make_cfg):
    with pytest.raises(ConfigError, match="exposes no"):
        build_module(make_cfg("data=synth3d", "method=ms_i1", "method.stages=2", "method.root_depth.enabled=true"),
                     INFO3D)


def _train(make_cfg, tmp_path, name: str, *overrides: str) -> dict:
    cfg = make_cfg("data=synth3d", *SMALL, "trainer.max_epochs=1", *overrides)
    run = RunDir(tmp_path / name)
    train_task(cfg, run_path=run.path, overrides=[], multirun=False)
    assert run.read_status()["status"] == "done"
    return json.loads(run.metrics_file.read_text())


def test_training_reports_root_error_and_leaves_gt_root_metrics_unchanged(make_cfg, tmp_path):
    plain = _train(make_cfg, tmp_path, "plain")
    gt = _train(make_cfg, tmp_path, "gt", "method.root_depth.enabled=true")
    est = _train(make_cfg, tmp_path, "est", "method.root_depth.enabled=true", "method.root_depth.eval=estimated")
    for block, stage in (("final", "val"), ("test", "test")):
        assert "root_depth_error" not in json.dumps(plain[block])
        assert 0 < gt[block][f"{stage}/root_depth_error"] < 10_000
        # detached features + GT root for decoding: every pose metric is exactly the plain run's
        assert gt[block][f"{stage}/mpjpe"] == plain[block][f"{stage}/mpjpe"]
        assert est[block][f"{stage}/root_depth_error"] == gt[block][f"{stage}/root_depth_error"]
        # decoding with the estimate changes the back-projection, so the camera-frame error changes
        assert est[block][f"{stage}/mpjpe"] != gt[block][f"{stage}/mpjpe"]
