"""GPU speed options testable on a CPU: the precision resolver, the trainer groups, SpeedOptions (channels_last,
in-place compile), bf16 autocast numerics of 3D I1, and the throughput / Lightning-overhead benches on tiny sizes."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import compose_config
from posereg.bench.lightning_overhead import lightning_overhead
from posereg.bench.lightning_overhead import markdown as lightning_markdown
from posereg.bench.throughput import markdown as throughput_markdown
from posereg.bench.throughput import throughput
from posereg.config import instantiate
from posereg.data import build_datamodule
from posereg.data.collate import collate_samples
from posereg.devices import amp_precision
from posereg.errors import ConfigError
from posereg.methods import build_module
from posereg.recipes.train import train_task
from posereg.runs import register_resolvers
from posereg.training.speed import SpeedOptions

register_resolvers()
# The benches' smallest setting of the default preset: timm's ResNet-10 stand-in, 32² crops, batch 4.
TINY_PRESET = ["experiment=quickstart", "backbone.name=resnet10t", "method.head.width=16", "data.input_size=32",
               "data.batch_size=4", "data.epoch_length=16"]


def _gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.version, "hip", None)


def test_amp_precision_is_bf16_from_ampere_on_and_fp16_before(monkeypatch):
    assert amp_precision() == "16-mixed"  # no GPU visible here: fp16 is the "otherwise"
    for capability, expected in (((7, 5), "16-mixed"), ((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed")):
        _gpu(monkeypatch, capability)
        assert amp_precision() == expected, capability
    _gpu(monkeypatch, (9, 0))
    assert compose_config(["trainer=gpu"]).trainer.precision == "bf16-mixed"  # the resolver is what gpu.yaml uses


@pytest.mark.parametrize(
    "trainer,expected",
    [("gpu", {"accelerator": "gpu", "devices": 1, "precision": amp_precision(), "benchmark": True,
              "inference_mode": False}),
     ("ddp", {"accelerator": "gpu", "devices": -1, "strategy": "ddp", "sync_batchnorm": True,
              "use_distributed_sampler": False, "precision": amp_precision(), "benchmark": True}),
     ("cpu", {"accelerator": "cpu", "devices": 1, "precision": "32-true", "benchmark": None}),
     ("ddp_cpu", {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "precision": "32-true"})],
)
def test_trainer_groups_compose_trainer_keywords_and_speed_options(trainer, expected):
    cfg = compose_config([f"trainer={trainer}"])
    node = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert {k: node.get(k) for k in expected} == expected
    assert node["_target_"] == "lightning.pytorch.Trainer" and "callbacks" not in node and "speed" not in node
    assert node["max_epochs"] == 6 and node["num_sanity_val_steps"] == 0  # the rest still comes from cpu.yaml
    speed = instantiate(cfg.callbacks.speed)
    gpu = trainer in ("gpu", "ddp")
    assert (speed.channels_last, speed.compile, speed.compile_mode) == (gpu, gpu, "default")


def test_speed_settings_override_and_unknown_compile_mode_is_one_line():
    cfg = compose_config(["trainer=gpu", "callbacks.speed.compile=false", "callbacks.speed.compile_mode=max-autotune"])
    speed = instantiate(cfg.callbacks.speed)
    assert (speed.channels_last, speed.compile, speed.compile_mode) == (True, False, "max-autotune")
    cpu = instantiate(compose_config(["+callbacks.speed.channels_last=true"]).callbacks.speed)
    assert (cpu.channels_last, cpu.compile) == (True, False)
    with pytest.raises(ConfigError, match=r"^callbacks\.speed\.compile_mode='fastest': use one of default, "):
        instantiate(compose_config(["trainer=gpu", "callbacks.speed.compile_mode=fastest"]).callbacks.speed)


def _i1_module(*extra: str):
    cfg = compose_config(["method=i1", "logger=none", "debug=tiny", "backbone.name=resnet10t", "method.head.width=16",
                          *extra])
    dm = build_datamodule(cfg)
    return build_module(cfg, dm.info), dm


def test_compile_is_in_place_once_and_keeps_checkpoint_keys():
    module, _ = _i1_module()
    keys = list(module.state_dict())
    speed = SpeedOptions(compile=True, compile_mode="reduce-overhead")
    speed.setup(None, module, "fit")
    compiled = module.net._compiled_call_impl
    assert compiled is not None and isinstance(module.net, nn.Module)
    speed.setup(None, module, "test")  # fit then test on one module: not compiled twice
    assert module.net._compiled_call_impl is compiled
    assert list(module.state_dict()) == keys  # checkpoints, init_from and eval see the same names


class LayoutProbe(pl.Callback):
    """Records the layout of the conv weights and of the images the training steps see."""

    def __init__(self) -> None:
        self.images: list[bool] = []
        self.weights: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images.append(batch["image"].is_contiguous(memory_format=torch.channels_last))
        convs = [p for p in pl_module.parameters() if p.dim() == 4]
        self.weights.append(all(p.is_contiguous(memory_format=torch.channels_last) for p in convs))


@pytest.mark.slow
def test_channels_last_on_cpu_trains_like_the_default_layout(make_cfg, tmp_path):
    runs = {}
    for name, extra in (("nchw", []), ("nhwc", ["+callbacks.speed.channels_last=true"])):
        probe = LayoutProbe()
        cfg = make_cfg("backbone.name=resnet10t", "method.head.width=16", "trainer.max_epochs=1",
                       "test_after_fit=false", "trainer.deterministic=true", *extra)
        metrics = train_task(cfg, run_path=tmp_path / name, overrides=[], multirun=False, extra_callbacks=[probe])
        runs[name] = (probe, metrics)
    nchw, nhwc = runs["nchw"][0], runs["nhwc"][0]
    assert nhwc.images == nhwc.weights == [True] * 3
    assert not any(nchw.images) and not any(nchw.weights)
    a, b = runs["nchw"][1]["final"]["val/loss"], runs["nhwc"][1]["final"]["val/loss"]
    # the same 3 Adam steps; only the convolutions' summation order differs (oneDNN picks other kernels)
    assert abs(a - b) <= 1e-3 * abs(a), (a, b)


def _spread_init(module) -> None:
    """Kaiming-initialize the head so that the untrained maps are peaked (N(0, 1e-3) gives flat ones)."""
    for m in module.net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.weight.std() < 0.01:
            nn.init.kaiming_normal_(m.weight)


def _forward(module, image: torch.Tensor, bf16: bool) -> list[dict]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return module(image)


def test_i1_3d_under_bf16_autocast_trains_and_matches_fp32():
    torch.manual_seed(0)
    module, dm = _i1_module("data=synth3d", "method.head.depth_bins=16", "data.batch_size=8")
    _spread_init(module)
    dm.setup("fit")
    batch = collate_samples(dm.preview("train", 8))
    opt = torch.optim.Adam(module.parameters(), 1e-3)
    losses, worst_coord, worst_loss = [], 0.0, 0.0
    for _ in range(4):
        with torch.no_grad():  # fp32 reference with the same weights (and batch statistics)
            ref = _forward(module, batch["image"], bf16=False)
            ref_loss = module.compute_loss(ref, batch, epoch=0)["total"].item()
        outputs = _forward(module, batch["image"], bf16=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module.compute_loss(outputs, batch, epoch=0)["total"]
        assert outputs[-1]["maps"].dtype == torch.bfloat16  # autocast did run the network in bf16 ...
        assert outputs[-1]["coords"].dtype == loss.dtype == torch.float32  # ... and the float32 islands held
        assert torch.isfinite(loss) and torch.isfinite(outputs[-1]["coords"]).all()
        worst_coord = max(worst_coord, (outputs[-1]["coords"] - ref[-1]["coords"]).abs().max().item())
        worst_loss = max(worst_loss, abs(loss.item() - ref_loss) / ref_loss)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.95 * losses[0], losses  # it learns under autocast
    # bf16 keeps 8 significant bits: each layer's output is rounded by up to 2^-9 relative, which adds up to logit
    # errors of ~0.1 on logits of spread ~1 here. The float32 softmax and expectation turn logit errors delta into
    # a coordinate shift sum_i p_i delta_i (x_i - E[x]) <= max|delta| * E|x - E[x]|: a few 1e-3 of the unit range
    # for these maps (measured 2.6e-3 at most). 0.01 is 0.64 px of the 64 px crop and 20 mm of the 2000 mm depth
    # range (1/6 of a depth bin): above rounding, and 3x below the spread of the predictions over the joints.
    assert worst_coord < 0.01, worst_coord
    assert ref[-1]["coords"].std(dim=1).mean() > 0.02  # the predictions' spread over the joints
    assert worst_loss < 1e-3, worst_loss  # the losses (float32 islands too) within 0.1 % of fp32 (measured 0.03 %)


@pytest.mark.slow
def test_throughput_triple_on_tiny_sizes():
    report = throughput(TINY_PRESET, workers=[0, 1], steps=2, rounds=1, device="cpu")
    assert report["setup"]["precision"] == "bf16-mixed" and report["setup"]["batch_size"] == 4
    assert [r["workers"] for r in report["rows"]] == [0, 1]
    for r in report["rows"]:
        assert r["model_steps_per_s"] > 0 and r["loader_batches_per_s"] > 0 and r["e2e_steps_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["e2e_steps_per_s"] / r["model_steps_per_s"])
        assert r["e2e_img_per_s"] == pytest.approx(4 * r["e2e_steps_per_s"])
    text = throughput_markdown(report)
    assert f"**{report['rows'][0]['ratio']:.3f}**" in text and "With 0 workers" in text


@pytest.mark.slow
def test_lightning_overhead_on_tiny_sizes():
    report = lightning_overhead(TINY_PRESET, steps=5, rounds=1, profile=True, device="cpu")
    assert report["ratio"] == pytest.approx(report["plain"]["s_per_step"] / report["lightning"]["s_per_step"])
    parts = [p["part"] for p in report["parts"]]
    assert parts == ["session: BatchPositionTracker", "session: ModelCheckpoint", "session: NanGuard",
                     "session: InterruptCheckpoint", "session: RngState", "session: MetricHistory",
                     "callbacks.best_checkpoint", "callbacks.lr_monitor", "callbacks.progress_bar",
                     "callbacks.speed", "csv logger"]
    assert all(p["s_per_step_without"] > 0 for p in report["parts"])
    assert f"**{report['ratio']:.3f}**" in lightning_markdown(report)
