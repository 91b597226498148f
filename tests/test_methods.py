"""The generic pose module: every variant learns, schedules switch, flip test, multi-stage, cut, ConfigErrors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import compose_config
from posereg.errors import ConfigError
from posereg.methods import LossSchedule, build_module, validate_combination
from posereg.skeletons import get_joint_set

torch.set_num_threads(1)
CONF = Path(__file__).resolve().parents[1] / "conf"
# Fast stand-in for ResNet-18 (same timm ResNet code, fewer blocks) to keep the learning tests short.
SMALL = ["backbone.name=resnet10t", "method.head.width=32", "data.input_size=64"]


def _info(js: str = "mpii16", has_3d: bool = False, size: int = 64) -> SimpleNamespace:
    return SimpleNamespace(joint_set=js, input_size=size, has_2d=True, has_3d=has_3d, depth_range=2000.0,
                           dataset_names=["synth"])


def _cfg(method: str, data: str = "synth2d", *extra: str):
    return compose_config([f"method={method}", f"data={data}", "logger=none", *SMALL, *extra])


def _batch(js: str = "mpii16", b: int = 2, size: int = 64, two_d: tuple[int, ...] = ()) -> dict:
    """A fixed random batch whose 3D labels project onto its 2D labels."""
    g = torch.Generator().manual_seed(0)
    j = get_joint_set(js).num_joints
    j2d = torch.rand(b, j, 2, generator=g) * size * 0.75 + size / 8
    root = torch.full((b,), 4000.0)
    z = root[:, None] + torch.randn(b, j, generator=g) * 250
    cam = torch.tensor([[80.0, 80.0, size / 2, size / 2]] * b)
    xy = (j2d - cam[:, None, 2:]) * z[..., None] / cam[:, None, :2]
    weights = torch.ones(b, j, 3)
    for i in two_d:
        weights[i, :, 2] = 0
    return {"image": torch.randn(b, 3, size, size, generator=g), "joints_2d": j2d,
            "joints_3d": torch.cat([xy, z[..., None]], -1), "weights": weights, "root_depth": root,
            "camera": cam, "head_size": torch.full((b,), 10.0),
            "crop_to_image": torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]] * b)}


def _spread_init(module) -> None:
    """Kaiming-initialize the heads so that an untrained net gives non-flat maps (N(0, 1e-3) gives flat ones)."""
    for m in module.net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.weight.std() < 0.01:
            nn.init.kaiming_normal_(m.weight)


def _fit(module, batch, steps: int = 15, lr: float = 1e-2) -> tuple[float, float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr)
    first = last = None
    for _ in range(steps):
        loss = module.compute_loss(module(batch["image"]), batch, epoch=0)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
    return first, last


@pytest.mark.parametrize(
    "method,data",
    [("r1", "synth2d"), ("h1", "synth2d"), ("h2", "synth2d"), ("h3", "synth2d"), ("istar", "synth2d"),
     ("i1", "synth2d"), ("i2", "synth2d"), ("i3", "synth2d"), ("ms_i1", "synth2d"),
     ("i1", "synth3d"), ("h2", "synth3d")],
)
def test_each_variant_learns_a_fixed_batch(method, data):
    torch.manual_seed(0)
    three_d = data == "synth3d"
    cfg = _cfg(method, data, "method.head.depth_bins=8")
    module = build_module(cfg, _info("h36m17" if three_d else "mpii16", has_3d=three_d))
    batch = _batch("h36m17" if three_d else "mpii16", two_d=(1,) if three_d else ())
    outs = module(batch["image"])
    dims = 3 if three_d else 2
    assert all(o["coords"].shape == (2, batch["joints_2d"].shape[1], dims) for o in outs)
    assert all(torch.isfinite(o["coords"]).all() for o in outs)
    if method != "r1":
        assert all(((o["coords"] >= 0) & (o["coords"] <= 1)).all() for o in outs)
    # The per-cell BCE of H3 and the depth of volumes memorize more slowly: they get more steps.
    steps = 30 if method == "h3" or three_d else 15
    first, last = _fit(module, batch, steps=steps, lr=3e-3 if method == "r1" else 1e-2)
    assert last < 0.5 * first, (first, last)


def test_schedule_switches_terms_at_epoch():
    cfg = _cfg("i1", "synth2d", "method.schedule.switch_epoch=2")
    module = build_module(cfg, _info())
    assert module.schedule.active(0) == {"heatmap"} and module.schedule.active(1) == {"heatmap"}
    assert module.schedule.active(2) == {"coord"} and module.schedule.active(5) == {"coord"}
    batch = _batch()
    outs = module(batch["image"])
    assert set(module.compute_loss(outs, batch, epoch=1)) == {"total", "heatmap"}
    assert set(module.compute_loss(outs, batch, epoch=2)) == {"total", "coord"}
    joint = build_module(_cfg("i1", "synth2d"), _info()).schedule
    assert joint.active(0) == joint.active(99) == {"coord", "heatmap"}
    with pytest.raises(ConfigError, match="before"):
        LossSchedule({"coord": 1.0}, switch_epoch=1)


def test_flip_test_is_left_right_consistent_on_symmetric_input():
    torch.manual_seed(0)
    flip = list(get_joint_set("mpii16").flip_index)
    img = torch.randn(2, 3, 64, 64)
    img = img + img.flip(-1)
    for flip_test in (True, False):
        module = build_module(_cfg("istar", "synth2d", f"flip_test={flip_test}"), _info()).eval()
        _spread_init(module)
        _, coords = module.predict_coords(img)
        c = coords[-1]
        mirror_x = (c[:, :, 0] - (1 - c[:, flip, 0])).abs().max().item()
        mirror_y = (c[:, :, 1] - c[:, flip, 1]).abs().max().item()
        if flip_test:
            assert mirror_x < 1e-6 and mirror_y < 1e-6
        else:
            assert mirror_x > 1e-3  # the check can fail: an untrained net alone is not symmetric


class _Record(nn.Module):
    """A stand-in metric that records the predictions it was given."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def update_from_batch(self, preds, batch):
        self.seen.append(preds["joints_2d_image"])

    def compute(self):
        return {"score": torch.tensor(float(len(self.seen))), "score_curve": torch.arange(3.0)}

    def reset(self):
        self.seen = []


def test_multistage_every_stage_supervised_and_cut_selects_stage(monkeypatch):
    torch.manual_seed(0)
    cfg = _cfg("ms_i1", "synth2d", "method.stages=3", "cut=1")
    module = build_module(cfg, _info())
    batch = _batch()
    losses = module.compute_loss(module(batch["image"]), batch, epoch=0)
    for s in (1, 2, 3):
        assert f"coord@stage{s}" in losses and f"heatmap@stage{s}" in losses
    losses["total"].backward()
    for stage in module.net.stages:
        assert stage.head.final.weight.grad.abs().sum() > 0
    _spread_init(module)
    module.eval()
    module.metrics["val"]["o1"]["rec"] = _Record()
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    module.validation_step(batch, 0)
    _, coords = module.predict_coords(batch["image"])
    seen = module.metrics["val"]["o1"]["rec"].seen[0]
    assert torch.allclose(seen, coords[1] * 64)  # identity crop_to_image: stage 2 (index 1) was evaluated
    assert len(coords) == 2  # early exit: stage 3 was not computed
    module.on_validation_epoch_end()
    assert logged["val/score"] == 1.0 and "val/score_curve" not in logged
    assert module.final_extras["val"]["score_curve"] == [0.0, 1.0, 2.0]


def test_cut_all_logs_every_output(monkeypatch):
    module = build_module(_cfg("ms_h1", "synth2d", "cut=all"), _info())
    for key in ("o0", "o1"):
        module.metrics["val"][key]["rec"] = _Record()
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    module.eval()
    module.validation_step(_batch(), 0)
    module.on_validation_epoch_end()
    assert {"val/score", "val/score@stage1", "val/score@stage2"} <= set(logged)


def test_optimizer_and_scheduler_from_config():
    module = build_module(_cfg("i1", "synth2d", "method.scheduler.milestones=[3,5]"), _info())
    conf = module.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.Adam) and conf["optimizer"].defaults["lr"] == 1e-3
    assert sorted(conf["lr_scheduler"]["scheduler"].milestones) == [3, 5]



# The method's own optimizer, and what each group entry builds: (class, {argument: value}).
METHOD_OPTIMIZERS = {"i1": (torch.optim.Adam, {"lr": 1e-3}),
                     "luvizon17": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
                     "sspnet": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.99}),
                     "deepskeleton_maps": (torch.optim.SGD, {"lr": 1e-5, "momentum": 0.9, "weight_decay": 2e-4})}
OPTIMIZER_GROUP = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
                   "rmsprop_keras": torch.optim.RMSprop}


@pytest.mark.parametrize("method", sorted(METHOD_OPTIMIZERS))
def test_each_method_keeps_its_papers_optimizer(method):
    from hydra.utils import instantiate

    cls, args = METHOD_OPTIMIZERS[method]
    opt = instantiate(compose_config([f"method={method}"]).method.optimizer)(params=[nn.Parameter(torch.zeros(1))])
    assert type(opt) is cls
    assert {k: opt.defaults[k] for k in args} == pytest.approx(args)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_GROUP))
@pytest.mark.parametrize("method", sorted(METHOD_OPTIMIZERS))
def test_method_optimizer_switches_without_carrying_another_optimizers_arguments(method, optimizer):
    # method/optimizer=<name> keeps the method's lr (and weight decay) but nothing only its own optimizer takes:
    # Luvizon's Keras rho/epsilon or DeepSkeleton's momentum would make Adam refuse its arguments
    from hydra.utils import instantiate

    cfg = compose_config([f"method={method}", f"method/optimizer={optimizer}"])
    opt = instantiate(cfg.method.optimizer)(params=[nn.Parameter(torch.zeros(1))])
    assert type(opt) is OPTIMIZER_GROUP[optimizer]
    assert opt.defaults["lr"] == pytest.approx(METHOD_OPTIMIZERS[method][1]["lr"])
    if optimizer == "rmsprop_keras":
        assert (opt.defaults["alpha"], opt.defaults["eps"]) == (0.9, 1e-7)
    if optimizer == "sgd":
        assert opt.defaults["momentum"] == 0.9
    assert bool(opt.defaults.get("fused")) == (optimizer in ("adam", "sgd"))  # torch has no fused RMSprop


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_fused_optimizer_makes_the_loops_update(optimizer):
    from hydra.utils import instantiate

    node = compose_config(["method=i1", f"method/optimizer={optimizer}"]).method.optimizer
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(7)]
    grads = [[torch.randn_like(t) for t in start] for _ in range(3)]
    weights = {}
    for fused in (True, False):
        params = [nn.Parameter(t.clone()) for t in start]
        opt = instantiate(node, fused=fused)(params=params)
        for step in grads:
            for p, g in zip(params, step, strict=True):
                p.grad = g.clone()
            opt.step()
        weights[fused] = params
    for a, b, before in zip(weights[True], weights[False], start, strict=True):
        assert not torch.equal(a, before)  # the steps moved it
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize(
    "method,extra,info,match",
    [
        ("i1", ["method.dims=3"], _info(), "no 3D labels"),
        ("r1", ["+method/loss@method.loss.heatmap=onehot_ce"], _info(), "no heat maps"),
        ("h3", [], _info("h36m17", has_3d=True), "2D only"),
        ("h1", ["+method/loss@method.loss.coord=l1"], _info(), "not differentiable"),
        ("h1", ["method.loss.heatmap.space=prob"], _info(), "space=prob"),
        ("i1", ["+method.schedule.after.conf=1.0"], _info(), "'conf'"),
        ("istar", ["method.loss.coord.weight=0"], _info(), "every loss weight is zero"),
    ],
)
def test_config_errors_before_building(method, extra, info, match):
    cfg = _cfg(method, "synth3d" if info.has_3d else "synth2d", *extra)
    if method == "i1":
        cfg.method.schedule.switch_epoch = 2
    with pytest.raises(ConfigError, match=match):
        validate_combination(cfg, info)


@pytest.mark.parametrize(
    "method,extra,match",
    [
        ("i1", ["method.decoder.ramp=cosine"], "ramp"),
        ("ms_h1", ["cut=5"], "out of range"),
        ("ms_h1", ["cut=stage9"], "not an output"),
        ("i1", ["method.loss.coord.kind=huber"], "method.loss.coord.kind"),
        ("i1", ["method.output_weights=[1.0,2.0]"], "output_weights"),
    ],
)
def test_config_errors_while_building(method, extra, match):
    with pytest.raises(ConfigError, match=match):
        build_module(_cfg(method, "synth2d", *extra), _info())


SETTINGS = {"integral_synth2d": False, "integral_synth3d": True, "integral_synthmixed": True,
            "integral_mpii": False, "integral_h36m_s1": True, "integral_h36m_s2": True}
FAMILY = ("r1", "h1", "h2", "h3", "istar", "i1", "i2", "i3", "ms_h1", "ms_i1")


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_setting_composes_with_every_variant_and_names_the_run_after_it(setting):
    three_d = SETTINGS[setting]
    for method in FAMILY:
        if three_d and method in ("h3", "i3", "ms_h1", "ms_i1") and "synth" not in setting:
            continue  # the paper has no H3/I3 in 3D and no multi-stage Human3.6M rows
        cfg = compose_config([f"experiment={setting}", f"method={method}", "logger=none"])
        assert cfg.experiment_name == f"{setting}_{method}" and cfg.method.name == method
        info = _info(cfg.data.joint_set, has_3d=three_d, size=cfg.data.input_size)
        if three_d and method in ("h3", "i3"):
            with pytest.raises(ConfigError, match="2D only"):
                validate_combination(cfg, info)
            continue
        validate_combination(cfg, info)
        pretrain = cfg.method.pretrain_epochs
        assert pretrain == cfg.trainer.max_epochs // 2
        assert cfg.method.schedule.switch_epoch == (pretrain if method in ("i1", "i2", "i3", "ms_i1") else None)
        if method.startswith("ms_"):
            assert cfg.method.net.num_stages == cfg.method.stages


LECTURE_ROWS = {  # docs/methods.md, "The lecture deck's classic architectures"
    "DeepPose stage 1": ["experiment=integral_mpii", "method=r1"],
    "CPM-style multi-stage": ["experiment=integral_mpii", "method=ms_h1", "method.stages=4", "cut=all"],
    "Stacked Hourglass": ["method=h1", "method/net=hourglass", "method.net.num_stacks=8", "data=mpii",
                          "data.input_size=256"],
    "Simple Baselines": ["method=h1", "backbone=resnet50", "method.head.num_deconv=3", "data=mpii",
                         "data.input_size=256"],
    "HRNet": ["method=h1", "backbone=hrnet_w32", "backbone.timm_kwargs.feature_location=''",
              "backbone.out_indices=[1]", "method.head.heatmap_stride=4", "data=mpii"],
    "DeepPose's cascade": ["experiment=deeppose_synth", "method.cascade.stages=2"],
    "CPN": ["method=h1", "method/net=cpn", "backbone=resnet50", "data=mpii", "data.input_size=256"],
}


@pytest.mark.parametrize("row", sorted(LECTURE_ROWS))
def test_lecture_deck_rows_build_with_the_documented_commands(row):
    from posereg.methods import build_net

    # the shapes, not ImageNet weights: integral_mpii starts from pretrained weights, which tests never download
    cfg = compose_config([*LECTURE_ROWS[row], "logger=none", "backbone.pretrained=false"])
    info = _info(cfg.data.joint_set, size=int(cfg.data.input_size))
    validate_combination(cfg, info)
    net = build_net(cfg, info)
    maps = [o.get("maps") for o in net(torch.zeros(1, 3, info.input_size, info.input_size))]
    if row == "HRNet":  # a stride-4 head straight on the high-resolution branch
        assert maps[-1].shape[-1] == info.input_size // 4 and len(net.head.deconv) == 0
    if row == "Stacked Hourglass":
        assert len(maps) == 8 and 25.0e6 < sum(p.numel() for p in net.parameters()) < 26.0e6
    if row == "CPM-style multi-stage":
        assert len(maps) == 4
    if row == "DeepPose's cascade":  # R1, then a refiner: coordinates only
        assert maps == [None, None] and net.output_names == ["stage1", "stage2"]
    if row == "CPN":  # four GlobalNet levels and RefineNet, all at stride 4; ResNet-50 CPN: 27.0 M parameters
        assert len(maps) == 5 and {m.shape[-1] for m in maps} == {info.input_size // 4}
        assert 26.9e6 < sum(p.numel() for p in net.parameters()) < 27.1e6
