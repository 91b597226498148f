"""Luvizon'17 network: regression block (soft-argmax, joint probability, eq. 6), shapes, training, figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posereg.errors import ConfigError
from posereg.nets.luvizon import ContextRegression, LuvizonNet
from posereg.viz.maps import encode_maps_rgb, part_context_figure, sample_from_outputs, save_figure, softmax2d

torch.set_num_threads(1)

BG = -1.0e4  # background logit: softmax puts all mass on the peak cells, sigmoid(BG) == 0


def _peak_map(h: int, w: int, cells: list[tuple[int, int]], value: float) -> torch.Tensor:
    """(h,w) logits: `value` at the given (row, col) cells, BG elsewhere."""
    m = torch.full((h, w), BG)
    for r, c in cells:
        m[r, c] = value
    return m


def _small_net(**kw) -> LuvizonNet:
    torch.manual_seed(0)
    args = dict(num_joints=3, width=32, num_blocks=2, num_context=2, kernel_size=3)
    args.update(kw)
    return LuvizonNet(**args)


# ---------------------------------------------------------------- regression block (no parameters)


def test_hand_made_maps_give_hand_computed_joint():
    j, nc, h, w = 2, 2, 4, 4
    maps = torch.full((1, (nc + 1) * j, h, w), BG)
    maps[0, 0] = _peak_map(h, w, [(1, 2)], 5.0)  # joint 0 part: cell (row 1, col 2)
    maps[0, 1] = _peak_map(h, w, [(0, 0), (2, 2)], 5.0)  # joint 1 part: two equal peaks -> midpoint
    # Context maps of joint 0 are channels J + 0*Nc + i; joint 1's are J + 1*Nc + i.
    maps[0, 2] = _peak_map(h, w, [(3, 0)], 0.0)  # ctx 1 of joint 0 at (0,1), p = 0.5
    maps[0, 3] = _peak_map(h, w, [(0, 3)], math.log(3.0))  # ctx 2 of joint 0 at (1,0), p = 0.75
    maps[0, 4] = _peak_map(h, w, [(0, 0)], 0.0)  # joint 1 contexts: zero total probability is
    maps[0, 5] = _peak_map(h, w, [(3, 3)], 0.0)  # impossible here; p = 0.5 each, at (0,0) and (1,1)

    out = ContextRegression(j, nc, alpha=0.8, ramp="linspace01")(maps)
    assert torch.allclose(out["part_coords"][0, 0], torch.tensor([2 / 3, 1 / 3]), atol=1e-6)
    assert torch.allclose(out["part_coords"][0, 1], torch.tensor([1 / 3, 1 / 3]), atol=1e-6)
    assert torch.allclose(out["context_prob"][0, 0], torch.tensor([0.5, 0.75]), atol=1e-6)
    ctx0 = (0.5 * np.array([0.0, 1.0]) + 0.75 * np.array([1.0, 0.0])) / 1.25  # (0.6, 0.4)
    expected0 = 0.8 * np.array([2 / 3, 1 / 3]) + 0.2 * ctx0  # (0.65333, 0.34667)
    expected1 = 0.8 * np.array([1 / 3, 1 / 3]) + 0.2 * np.array([0.5, 0.5])
    assert np.allclose(out["coords"][0].numpy(), [expected0, expected1], atol=1e-6)

    centre = ContextRegression(j, nc, alpha=1.0, ramp="center")(maps)
    assert torch.allclose(centre["coords"][0, 0], torch.tensor([2.5 / 4, 1.5 / 4]), atol=1e-6)


def test_zero_probability_context_reduces_to_part_prediction():
    torch.manual_seed(1)
    j, nc = 3, 2
    maps = torch.randn(2, (nc + 1) * j, 6, 6)
    maps[:, j:] = BG  # every context map's global max is BG -> p = sigmoid(BG) = 0
    maps[:, j:, 2, 3] = BG + 50.0  # still zero probability, but a distinct location
    out = ContextRegression(j, nc, alpha=0.8)(maps)
    assert torch.all(out["context_prob"] == 0)
    assert torch.allclose(out["coords"], out["part_coords"], atol=1e-7)
    assert out["context_coords"].shape == (2, j, nc, 2)


def test_alpha_one_and_no_context_give_the_part_prediction():
    torch.manual_seed(2)
    j = 4
    maps = torch.randn(2, 3 * j, 8, 8) * 3
    with_alpha1 = ContextRegression(j, 2, alpha=1.0)(maps)
    assert torch.allclose(with_alpha1["coords"], with_alpha1["part_coords"], atol=1e-7)
    mixed = ContextRegression(j, 2, alpha=0.8)(maps)
    assert not torch.allclose(mixed["coords"], mixed["part_coords"], atol=1e-4)
    no_ctx = ContextRegression(j, 0)(maps[:, :j])
    assert torch.allclose(no_ctx["coords"], with_alpha1["part_coords"])
    assert "context_maps" not in no_ctx


def test_joint_probability_increases_with_peak_and_ignores_context_maps():
    j, nc = 1, 2
    reg = ContextRegression(j, nc)
    probs = []
    for peak in (-2.0, 0.0, 1.0, 3.0, 6.0):
        maps = torch.zeros(1, (nc + 1) * j, 5, 5)
        maps[0, 0, 2, 1] = peak
        maps[0, 1:] = torch.randn(nc, 5, 5) * 10  # context maps must not move the joint probability
        out = reg(maps)
        assert out["conf_logits"].item() == pytest.approx(max(peak, 0.0))
        probs.append(torch.sigmoid(out["conf_logits"]).item())
    assert all(b > a for a, b in zip(probs[1:], probs[2:], strict=False))
    assert probs[0] == probs[1] == pytest.approx(0.5)  # the map's max is the zero background


# ---------------------------------------------------------------- network


@pytest.mark.parametrize("size,num_context", [(64, 2), (128, 0)])
def test_output_shapes_and_names(size, num_context):
    net = _small_net(num_context=num_context).eval()
    with torch.no_grad():
        outs = net(torch.randn(2, 3, size, size))
    s = size // 8
    assert [o["name"] for o in outs] == ["block1", "block2"]
    for o in outs:
        assert o["coords"].shape == (2, 3, 2)
        assert o["maps"].shape == (2, 3, s, s)
        assert o["conf_logits"].shape == (2, 3)
        assert ((o["coords"] >= 0) & (o["coords"] <= 1)).all()
        if num_context:
            assert o["context_maps"].shape == (2, 3, num_context, s, s)
            assert o["context_prob"].shape == (2, 3, num_context)
        else:
            assert "context_maps" not in o
    # The last block feeds no later block: it has no re-projection (no unused parameters under DDP).
    assert net.blocks_b[-1].fremap is None and net.blocks_b[0].fremap is not None


def test_reference_size_feature_width_and_parameter_count():
    net = LuvizonNet(num_joints=16, num_blocks=1)
    with torch.no_grad():
        feat = net.stem.eval()(torch.randn(1, 3, 256, 256))
    assert feat.shape == (1, 576, 32, 32)  # 256^2 -> 32^2 x 576 (3 x 192)
    # One block adds Block-A + Block-B (+ no re-projection for the last block); M = 48 maps for MPII-16.
    assert net.blocks_b[0].regmap[1].out_channels == 48


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError, match="num_context"):
        LuvizonNet(num_joints=16, num_context=-1)
    with pytest.raises(ConfigError, match="alpha"):
        LuvizonNet(num_joints=16, alpha=1.5)
    with pytest.raises(ConfigError, match="ramp"):
        LuvizonNet(num_joints=16, ramp="pixels")
    with pytest.raises(ConfigError, match="divisible by 32"):
        _small_net()(torch.randn(1, 3, 48, 48))


# ---------------------------------------------------------------- figures


def test_encode_maps_rgb_puts_each_joint_colour_at_its_peak():
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    maps = np.full((2, 4, 4), -50.0)
    maps[0, 1, 1] = 0.0
    maps[1, 2, 3] = 0.0
    prob = softmax2d(maps)
    assert np.allclose(prob.sum(axis=(1, 2)), 1.0)
    rgb = encode_maps_rgb(prob, colors)
    assert np.allclose(rgb[1, 1], [1, 0, 0]) and np.allclose(rgb[2, 3], [0, 0, 1])
    assert rgb[0, 0].max() < 1e-6


def test_part_context_figure_layout_and_png(tmp_path):
    net = _small_net().eval()
    batch = {
        "image": torch.randn(2, 3, 64, 64),
        "joints_2d": torch.tensor([[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]]).repeat(2, 1, 1),
        "weights": torch.ones(2, 3, 3),
    }
    with torch.no_grad():
        out = net(batch["image"])[-1]
    sample = sample_from_outputs(batch, out, index=1)
    assert np.allclose(sample.gt[1], [30 / 64, 40 / 64])
    assert sample.context_maps.shape == (3, 2, 8, 8)
    fig = part_context_figure(sample, ["a", "b", "c"], joints=[0, 2], bones=[(0, 1), (1, 2)])
    assert len(fig.axes) == 3 * 3  # (1 + 2 joints) rows x max(3, 1 + Nc) columns
    assert fig.axes[3 + 1].get_title().startswith("a: context 1 p=")
    path = save_figure(fig, tmp_path / "m" / "fig.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _TinyModule:
    """Builds a minimal LightningModule around the small net (the callback only needs `.net`)."""

    @staticmethod
    def make():
        import lightning.pytorch as pl

        class M(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = _small_net()
                self.joint_set_name = None

            def training_step(self, batch, _):
                return sum(((o["coords"] * 64 - batch["joints_2d"]) ** 2).mean() for o in self.net(batch["image"]))

            def validation_step(self, batch, _):
                return None

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=1e-3)

        return M()


def _loader():
    torch.manual_seed(0)
    data = [
        {"image": torch.randn(3, 64, 64), "joints_2d": torch.rand(3, 2) * 64, "weights": torch.ones(3, 3)}
        for _ in range(2)
    ]
    return torch.utils.data.DataLoader(data, batch_size=2)


@pytest.mark.parametrize("logger", ["csv", "tensorboard"])
def test_part_maps_callback_logs_every_n_epochs(tmp_path, logger):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from posereg.viz.callbacks import PartMapsCallback

    cb = PartMapsCallback(every_n_epochs=2, joints=[1])
    lg = CSVLogger(tmp_path) if logger == "csv" else TensorBoardLogger(tmp_path)
    trainer = pl.Trainer(
        default_root_dir=tmp_path, max_epochs=3, logger=lg, callbacks=[cb], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
    )
    trainer.fit(_TinyModule.make(), _loader(), _loader())
    pngs = sorted(p.name for p in (tmp_path / "maps").glob("*.png")) if (tmp_path / "maps").exists() else []
    if logger == "csv":
        assert pngs == ["maps_part_context_epoch0000.png", "maps_part_context_epoch0002.png"]
    else:
        assert pngs == []  # the figure went to TensorBoard instead
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(lg.log_dir), size_guidance={"images": 0})
        acc.Reload()
        assert [e.step for e in acc.Images("maps/part_context")] == [1, 3]


# ---------------------------------------------------------------- through the generic module (config)


def _module(make_cfg, *overrides):
    from posereg.data.datamodule import DataInfo
    from posereg.methods import build_module

    cfg = make_cfg("experiment=luvizon_synth", "method.net.width=32", "method.net.kernel_size=3", *overrides)
    info = DataInfo("mpii16", 64, True, False, 2000.0, ("synth",))
    torch.manual_seed(0)
    return build_module(cfg, info)


def _fixed_batch(b: int = 4, j: int = 16, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    joints = torch.rand(b, j, 2, generator=g) * (size * 0.8) + size * 0.1
    weights = torch.ones(b, j, 3)
    weights[..., 2] = 0
    joints[0, 0] = torch.tensor([size * 1.3, size * 0.5])  # outside the crop: the data zeroes its x,y weight
    weights[0, 0, :2] = 0
    return {"image": torch.randn(b, 3, size, size, generator=g), "joints_2d": joints, "weights": weights}


def test_config_builds_the_network_with_block_outputs(make_cfg):
    module = _module(make_cfg, "method.net.num_blocks=3", "cut=block2")
    assert module.output_names == ["block1", "block2", "block3"]
    assert module.cut_index == 1
    assert isinstance(module.optimizer_factory(params=module.parameters()), torch.optim.RMSprop)
    assert module.scheduler_factory.keywords["factor"] == 0.4


def test_bce_target_follows_crop_membership(make_cfg):
    module = _module(make_cfg)
    batch = _fixed_batch(b=1, j=16)
    outputs = [{"name": "block1", "coords": torch.full((1, 16, 2), 0.5), "conf_logits": torch.full((1, 16), 3.0)}]
    conf = module.loss(outputs, module.codec.encode(batch), {"conf": 1.0})["conf"]
    # 15 joints inside the crop (target 1) and one outside (target 0), all with logit 3.
    expected = 15 * math.log1p(math.exp(-3.0)) + math.log1p(math.exp(3.0))
    assert conf.item() == pytest.approx(expected, rel=1e-5)


def test_few_steps_on_a_fixed_batch_reduce_every_block_loss(make_cfg):
    module = _module(make_cfg)
    batch = _fixed_batch()
    opt = module.optimizer_factory(params=module.parameters())
    module.train()

    def per_block() -> dict[str, float]:
        with torch.no_grad():
            losses = module.compute_loss(module(batch["image"]), batch, epoch=0)
        return {n: losses[f"coord@{n}"].item() + 0.01 * losses[f"conf@{n}"].item() for n in module.output_names}

    before = per_block()
    for _ in range(12):
        opt.zero_grad()
        module.compute_loss(module(batch["image"]), batch, epoch=0)["total"].backward()
        opt.step()
    after = per_block()
    assert set(before) == {"block1", "block2"}
    for name in before:
        assert after[name] < 0.9 * before[name], (name, before[name], after[name])
