"""docs/extending.md stays true: its Python blocks become a module, and each example is run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf, open_dict

from conftest import compose_config
from posereg.data.datamodule import DataInfo
from posereg.errors import ConfigError
from posereg.methods import build_module
from posereg.recipes.train import train_task

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    """The page's Python blocks as the importable module `my_posereg_ext`."""
    text = DOC.read_text()
    folder = tmp_path_factory.mktemp("ext")
    (folder / "my_posereg_ext.py").write_text("\n\n".join(re.findall(r"```python\n(.*?)```", text, re.S)))
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        assert isinstance(yaml.safe_load(block), dict)  # every YAML block parses
    sys.path.insert(0, str(folder))
    import my_posereg_ext

    yield my_posereg_ext
    sys.path.remove(str(folder))
    sys.modules.pop("my_posereg_ext", None)


def _info(size: int = 32) -> DataInfo:
    return DataInfo("mpii16", size, True, False, 2000.0, ("synth",))


@pytest.mark.slow
def test_the_network_example_trains_and_exits_early(ext, make_cfg, tmp_path):
    cfg = make_cfg("method=i1", "data.input_size=32", "cut=all", "trainer.max_epochs=1")
    with open_dict(cfg):
        cfg.method.net = OmegaConf.create({"_target_": "my_posereg_ext.TwoStepNet", "decoder": "${method.decoder}",
                                           "width": 8})
    metrics = train_task(cfg, run_path=tmp_path / "run", overrides=[], multirun=False)
    assert {"val/pckh@0.5@coarse", "val/pckh@0.5@fine"} <= set(metrics["final"])
    net = build_module(cfg, _info()).net.eval()
    assert [o["name"] for o in net(torch.zeros(1, 3, 32, 32), cut=0)] == ["coarse"]


def test_the_loss_term_example_is_a_weighted_huber(ext):
    cfg = compose_config(["method=istar", "backbone.name=resnet10t", "method.head.width=8", "data.input_size=32"])
    with open_dict(cfg):
        cfg.method.loss.coord = OmegaConf.create({"_target_": "my_posereg_ext.CoordHuber", "delta": 0.05,
                                                  "weight": 1.0})
    module = build_module(cfg, _info())
    coords = torch.full((2, 16, 2), 0.5)
    out = [{"name": "out", "coords": coords}]
    batch = {"joints_2d": torch.full((2, 16, 2), 0.5 * 32 + 0.1 * 32), "weights": torch.ones(2, 16, 3)}
    value = module.compute_loss(out, batch, epoch=0)["coord"]
    # |d| = 0.1 > delta: huber = delta * (|d| - delta / 2) per axis; 16 joints x 2 axes, divided by the batch (2)
    assert value.item() == pytest.approx(16 * 2 * 0.05 * (0.1 - 0.025), rel=1e-5)


def test_the_dataset_example_crops_and_round_trips(ext, tmp_path):
    rng = np.random.default_rng(0)
    labels = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), rng.integers(0, 255, (120, 100, 3), dtype=np.uint8))
        joints = np.c_[rng.uniform(20, 80, (14, 2)), np.ones(14)]
        joints[0, 2] = 0
        labels.append({"image": f"{i}.jpg", "joints": joints.tolist()})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    ds = ext.FolderPoses(root=str(tmp_path), split="val", joint_set="lsp14", input_size=64)
    sample = ds[1]
    A = sample["crop_to_image"].numpy()
    back = sample["joints_2d"].numpy() @ A[:, :2].T + A[:, 2]
    labelled = sample["weights"][:, 0].numpy() > 0
    expect = np.asarray(labels[1]["joints"])[:, :2] + 0.5
    assert labelled.sum() == 13 and np.allclose(back[labelled], expect[labelled], atol=1e-3)


def test_the_metric_example_is_the_mean_pixel_error(ext):
    metric = ext.MeanPixelError()
    gt = torch.rand(4, 16, 2) * 100
    batch = {"joints_2d": gt, "weights": torch.ones(4, 16, 3), "crop_to_image": torch.eye(2, 3).expand(4, 2, 3)}
    batch["weights"][0, :3] = 0
    pred = gt + torch.tensor([3.0, 4.0])
    pred[0, :3] = float("nan")  # masked joints may hold anything
    metric.update_from_batch({"joints_2d_image": pred}, batch)
    assert metric.compute()["mpe"].item() == pytest.approx(5.0)


class _Snapshots(pl.Callback):
    """The network's parameters when training starts and after every epoch."""

    def __init__(self) -> None:
        self.taken: list[dict[str, torch.Tensor]] = []

    def _take(self, module: pl.LightningModule) -> None:
        self.taken.append({k: v.detach().clone() for k, v in module.net.named_parameters()})

    def on_train_start(self, trainer, pl_module) -> None:
        self._take(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._take(pl_module)


@pytest.mark.slow
def test_the_module_example_holds_the_backbone_for_its_warmup_epochs(ext, make_cfg, tmp_path):
    cfg = make_cfg("method=i1", "backbone.name=resnet10t", "method.head.width=8", "data.input_size=32",
                   "test_after_fit=false")
    with open_dict(cfg):
        cfg.method.module = OmegaConf.create({"_target_": "my_posereg_ext.FrozenWarmup", "frozen": "backbone.",
                                              "epochs": 1})
    snapshots = _Snapshots()
    train_task(cfg, run_path=tmp_path / "run", overrides=[], multirun=False, extra_callbacks=[snapshots])
    start, epoch0, epoch1 = snapshots.taken  # debug=tiny: two epochs
    backbone = [k for k in start if k.startswith("backbone.")]
    head = [k for k in start if k.startswith("head.")]
    assert backbone and head
    assert all(torch.equal(start[k], epoch0[k]) for k in backbone)  # held during the warm-up epoch
    assert not all(torch.equal(start[k], epoch0[k]) for k in head)  # while the head trains
    assert not all(torch.equal(epoch0[k], epoch1[k]) for k in backbone)  # then the backbone trains too
    with open_dict(cfg):
        cfg.method.module.frozen = "trunk."
    with pytest.raises(ConfigError, match=r"^method.module.frozen='trunk.': no parameter"):
        build_module(cfg, _info())
