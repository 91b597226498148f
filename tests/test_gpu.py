"""On a CUDA device (marker `gpu`, skipped elsewhere): every method family trains, runs resume, evaluation and
flip testing work, metrics compute on the device, and channels_last + torch.compile train.

Run with `pytest -m gpu` (scripts/gpu_check.sh does, on a GPU machine). Runs use `trainer=gpu` (mixed precision
from `${amp_precision:}`, channels_last on); torch.compile is switched off except in its own test, where
compiling costs more than these few steps.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch

from conftest import TINY, InterruptAt, compose_config
from posereg.cli.eval import evaluate
from posereg.devices import amp_precision
from posereg.recipes.train import train_task
from posereg.runs import RunDir, register_resolvers

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

register_resolvers()
GPU = ["trainer=gpu", "callbacks.speed.compile=false", "backbone.name=resnet10t"]
FAMILIES = {
    "i1_2d": ["method=i1", "data=synth2d", "method.head.width=32"],
    "i1_3d": ["method=i1", "data=synth3d", "method.head.width=32", "method.head.depth_bins=16"],
    "r1": ["method=r1", "data=synth2d"],
    "ms_i1": ["method=ms_i1", "data=synth2d", "method.head.width=32", "method.stages=2"],
    "luvizon17_small": ["method=luvizon17_small", "data=synth2d"],
    "sspnet_small": ["method=sspnet_small", "data=synth3d"],
}


class DeviceProbe(pl.Callback):
    """Records where the module and the training images are, the images' layout and the loss of every step."""

    def __init__(self) -> None:
        self.devices: set[str] = set()
        self.channels_last: set[bool] = set()
        self.compiled: set[bool] = set()
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.devices |= {pl_module.device.type, batch["image"].device.type}
        self.channels_last.add(batch["image"].is_contiguous(memory_format=torch.channels_last))
        self.compiled.add(getattr(pl_module.net, "_compiled_call_impl", None) is not None)
        self.losses.append(float(outputs["loss"]))


def _run(cfg, path, **kw):
    return train_task(cfg, run_path=path, overrides=[], multirun=False, **kw)


def _finite_block(block: dict) -> bool:
    return bool(block) and all(math.isfinite(v) for v in block.values())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_method_family_trains_on_cuda(make_cfg, tmp_path, family):
    probe = DeviceProbe()
    metrics = _run(make_cfg(*GPU, *FAMILIES[family]), tmp_path / family, extra_callbacks=[probe])
    assert RunDir(tmp_path / family).read_status()["status"] == "done"
    assert probe.devices == {"cuda"} and probe.channels_last == {True}
    assert len(probe.losses) == 6 and all(math.isfinite(v) for v in probe.losses)  # 2 epochs x 3 steps
    assert metrics["setup"]["device"].startswith("CUDA") and metrics["setup"]["precision"] == amp_precision()
    assert _finite_block(metrics["final"]) and _finite_block(metrics["test"])


def test_an_interrupted_cuda_run_resumes_to_the_end(make_cfg, tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit):
        _run(make_cfg(*GPU, "test_after_fit=false"), run.path, extra_callbacks=[InterruptAt(4)])
    assert run.read_status()["status"] == "interrupted"
    assert torch.load(run.last_ckpt, weights_only=False)["global_step"] == 4
    probe = DeviceProbe()
    _run(make_cfg(*GPU, "test_after_fit=false"), run.path, extra_callbacks=[probe])
    status = run.read_status()
    assert status["status"] == "done" and status["resumed_from"].endswith("last.ckpt")
    assert len(probe.losses) == 2 and probe.devices == {"cuda"}  # only the 2 steps left
    state = torch.load(run.last_ckpt, weights_only=False)
    assert state["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One finished I1 2D run on the GPU (evaluation and flip tests read it)."""

    tmp = tmp_path_factory.mktemp("gpu_run")
    cfg = compose_config([*TINY, f"paths.runs_dir={tmp / 'runs'}", *GPU, *FAMILIES["i1_2d"]])
    metrics = _run(cfg, tmp / "run")
    return tmp / "run", metrics


def test_eval_on_cuda_reproduces_the_runs_last_validation(trained_run):
    run, metrics = trained_run
    out = evaluate(run, split="val", ckpt="last")
    # the same weights and samples; only cuDNN's algorithm choice may differ: one joint of the 16 x 16 is 0.4 points
    for key in ("val/pckh@0.5", "val/auc"):
        assert abs(out["metrics"][key] - metrics["final"][key]) <= 1.0, (key, out["metrics"], metrics["final"])


def test_flip_test_on_cuda(trained_run):
    run, _ = trained_run
    plain = evaluate(run, split="val", ckpt="last", overrides=["flip_test=false"])["metrics"]
    flipped = evaluate(run, split="val", ckpt="last", overrides=["flip_test=true"])["metrics"]
    for m in (plain, flipped):
        assert 0.0 <= m["val/pckh@0.5"] <= 100.0 and math.isfinite(m["val/loss"])
    # flip averaging on a mirror-symmetric image gives mirror-symmetric joints, on the device too
    from posereg.data import build_datamodule
    from posereg.methods import build_module
    from posereg.skeletons import get_joint_set

    cfg = compose_config(["debug=tiny", "logger=none", *GPU, *FAMILIES["i1_2d"], "flip_test=true"])
    module = build_module(cfg, build_datamodule(cfg).info).cuda().eval()
    img = torch.randn(2, 3, 64, 64, device="cuda")
    _, coords = module.predict_coords(img + img.flip(-1))
    c, flip = coords[-1], list(get_joint_set("mpii16").flip_index)
    assert (c[:, :, 0] - (1 - c[:, flip, 0])).abs().max() < 1e-5 and (c[:, :, 1] - c[:, flip, 1]).abs().max() < 1e-5


@pytest.mark.parametrize("data,metric", [("synth2d", "pckh"), ("synth3d", "mpjpe")])
def test_metrics_compute_on_the_device_as_on_the_cpu(data, metric):
    from posereg.config import instantiate
    from posereg.data import build_datamodule
    from posereg.data.collate import collate_samples
    from posereg.metrics import batch as mb

    cfg = compose_config(["debug=tiny", "logger=none", f"data={data}"])
    dm = build_datamodule(cfg)
    dm.setup("validate")
    batch = collate_samples(dm.preview("val", 8))
    g = torch.Generator().manual_seed(0)
    preds = {"joints_2d_image": mb.gt_2d_image(batch) + 3 * torch.randn(8, batch["joints_2d"].shape[1], 2, generator=g)}
    if "joints_3d" in batch:
        preds["joints_3d_cam"] = batch["joints_3d"] + 40 * torch.randn(batch["joints_3d"].shape, generator=g)
    results = {}
    for device in ("cpu", "cuda"):
        m = instantiate(cfg.data.metrics[metric]).to(device)
        on = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        m.update_from_batch({k: v.to(device) for k, v in preds.items()}, on)
        results[device] = {k: float(v) for k, v in m.compute().items() if torch.is_tensor(v) and v.numel() == 1}
    assert results["cpu"] and results["cpu"].keys() == results["cuda"].keys()
    for key, value in results["cpu"].items():
        assert results["cuda"][key] == pytest.approx(value, rel=1e-5, abs=1e-4, nan_ok=True), key


def test_channels_last_and_compile_train_on_cuda(make_cfg, tmp_path):
    probe = DeviceProbe()
    cfg = make_cfg("trainer=gpu", "backbone.name=resnet10t", *FAMILIES["i1_2d"],
                   "trainer.max_epochs=1", "trainer.limit_val_batches=1", "test_after_fit=false")
    assert cfg.callbacks.speed.compile and cfg.callbacks.speed.channels_last  # trainer=gpu's defaults
    metrics = _run(cfg, tmp_path / "run", extra_callbacks=[probe])
    assert probe.compiled == {True} and probe.channels_last == {True} and probe.devices == {"cuda"}
    assert all(math.isfinite(v) for v in probe.losses) and _finite_block(metrics["final"])
    state = torch.load(RunDir(tmp_path / "run").last_ckpt, weights_only=False)["state_dict"]
    assert not any("_orig_mod" in k for k in state)  # compiled in place: checkpoints keep their names
    assert math.isfinite(evaluate(tmp_path / "run", split="val", ckpt="last")["metrics"]["val/loss"])


def test_a_cuda_graph_replay_of_an_sspnet_cut_equals_its_eager_forward():
    # scripts/gpu_check.sh times SSP-Net at batch 1 as CUDA graph replays: they must compute what the network does
    from posereg.bench.sspnet import graphed
    from posereg.nets.sspnet import SSPNet

    def tensors(outputs: list[dict]) -> list[torch.Tensor]:
        return [v for o in outputs for _, v in sorted(o.items()) if torch.is_tensor(v)]

    torch.manual_seed(0)
    net = SSPNet(4, growth=8, num_pyramids=2, num_levels=2, input_size=64).cuda().eval()
    x = torch.randn(1, 3, 64, 64, device="cuda")
    with torch.inference_mode():
        first = tensors(net(x, cut=1))
        replay = graphed(lambda inp: net(inp, cut=1), x)
        x.copy_(torch.randn(1, 3, 64, 64, device="cuda"))  # a replay reads the buffer as it is now
        eager = tensors(net(x, cut=1))
        replayed = tensors(replay(x))
    assert len(replayed) == len(eager) > 0
    torch.testing.assert_close(replayed, eager)
    assert not torch.equal(first[0], eager[0])
