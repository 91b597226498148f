"""Stacked Hourglass: shapes, per-stack learning, early exit, re-injection and the published parameter count."""

from __future__ import annotations

import pytest
import torch

from posereg.codecs import MapDecoder
from posereg.errors import ConfigError
from posereg.nets.hourglass import StackedHourglass
from posereg.ops import gaussian_heatmaps

J = 5


def _net(**kwargs) -> StackedHourglass:
    torch.manual_seed(0)
    kwargs = {"num_stacks": 2, "width": 32, "input_size": 64, **kwargs}
    return StackedHourglass(J, MapDecoder("integral"), **kwargs)


def _image(b: int = 2) -> torch.Tensor:
    return torch.randn(b, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_2d_shapes_per_stack():
    net = _net(num_stacks=3).eval()
    with torch.no_grad():
        out = net(_image())
    assert [o["name"] for o in out] == ["stack1", "stack2", "stack3"] == net.output_names
    for o in out:
        assert o["maps"].shape == (2, J, 16, 16)
        assert o["coords"].shape == (2, J, 2)
        assert o["features"].shape == (2, 32, 16, 16)
        # N(0, 1e-3) map convs: the soft-argmax starts near the centre of the crop.
        assert torch.allclose(o["coords"], torch.full_like(o["coords"], 0.5), atol=0.02)


def test_3d_coarse_to_fine_depth_bins():
    net = _net(depth_bins=[1, 8]).eval()
    assert net.stacks[0].maps.out_channels == J * 1 and net.stacks[1].maps.out_channels == J * 8
    # Stack 2 re-injects stack 1's J*1 flat maps; stack 2 is last and re-injects nothing.
    assert net.stacks[0].merge_maps.in_channels == J and net.stacks[1].merge_maps is None
    with torch.no_grad():
        s1, s2 = net(_image())
    assert s1["maps"].shape == (2, J, 1, 16, 16)
    assert s2["maps"].shape == (2, J, 8, 16, 16)
    assert s1["coords"].shape == s2["coords"].shape == (2, J, 3)
    # A single depth bin decodes to the middle of the depth range.
    assert torch.allclose(s1["coords"][..., 2], torch.full((2, J), 0.5))


def test_depth_bins_int_and_config_errors():
    net = _net(depth_bins=4)
    assert net.depth_bins == [4, 4]
    with pytest.raises(ConfigError, match="depth_bins"):
        _net(depth_bins=[1, 8, 64])
    with pytest.raises(ConfigError, match="depth_bins"):
        _net(depth_bins=[0, 8])
    with pytest.raises(ConfigError, match="data.input_size"):
        _net(input_size=96)  # 4 * 2**4 = 64 does not divide 96
    with pytest.raises(ConfigError, match="data.input_size"):
        _net(num_levels=2, input_size=(64, 72))
    _net(num_levels=2, input_size=(64, 80))  # multiples of 16
    assert StackedHourglass.config_output_names(num_stacks=4, width=8) == ["stack1", "stack2", "stack3", "stack4"]


def test_every_stack_learns_a_fixed_batch():
    net = _net().train()
    image = _image()
    grid = torch.rand(2, J, 2, generator=torch.Generator().manual_seed(2)) * 0.6 + 0.2
    target = gaussian_heatmaps(grid, (16, 16), sigma=1.0, normalize_peak=True)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    history = []
    for _ in range(50):
        losses = [((o["maps"] - target) ** 2).mean() for o in net(image)]
        opt.zero_grad()
        sum(losses).backward()
        opt.step()
        history.append([float(loss) for loss in losses])
    start, end = history[0], history[-1]
    assert start[0] == pytest.approx(float((target**2).mean()), rel=0.01)  # maps start at ~0
    for s in range(2):
        assert end[s] < 0.5 * start[s], (s, start, end)


def test_cut_exits_early():
    net = _net(num_stacks=3).eval()
    for k in range(3):
        ran: list[str] = []
        handles = [
            m.register_forward_hook(lambda *_, name=n, ran=ran: ran.append(name))
            for n, m in net.named_modules()
            if n.startswith("stacks.") and n.count(".") <= 2
        ]
        with torch.no_grad():
            out = net(_image(), cut=k)
        for h in handles:
            h.remove()
        assert [o["name"] for o in out] == net.output_names[: k + 1]
        assert {n.split(".")[1] for n in ran} == {str(s) for s in range(k + 1)}
        # The cut stack's re-injection convs feed no stack that runs, so they are skipped too.
        assert f"stacks.{k}.merge_maps" not in ran and f"stacks.{k}.merge_features" not in ran
        assert ("stacks.0.merge_maps" in ran) == (k > 0)
    with torch.no_grad():
        full = net(_image())
        cut1 = net(_image(), cut=1)
    assert torch.equal(cut1[1]["maps"], full[1]["maps"])
    with pytest.raises(ConfigError, match="cut=3"):
        net(_image(), cut=3)


def _perturb(module: torch.nn.Module):
    return module.register_forward_hook(lambda _m, _i, out: out + 1.0)


def test_reinjection_of_stack_maps():
    net = _net(depth_bins=[2, 4]).eval()
    image = _image()
    with torch.no_grad():
        ref = net(image)
        h = _perturb(net.stacks[0].maps)
        hit = net(image)
        h.remove()
        # Stack 1 does not depend on stack 2.
        h = _perturb(net.stacks[1].maps)
        late = net(image)
        h.remove()
    assert torch.allclose(hit[0]["maps"], ref[0]["maps"] + 1.0)
    # Stack 2 sees stack 1's maps through merge_maps: its maps move by over 10 % of their magnitude.
    delta = (hit[1]["maps"] - ref[1]["maps"]).abs().max()
    assert delta > 0.1 * ref[1]["maps"].abs().max()
    assert torch.equal(late[0]["maps"], ref[0]["maps"])
    # With the maps' re-injection conv zeroed, perturbing stack 1's maps no longer reaches stack 2.
    with torch.no_grad():
        net.stacks[0].merge_maps.weight.zero_()
        net.stacks[0].merge_maps.bias.zero_()
        ref = net(image)
        h = _perturb(net.stacks[0].maps)
        hit = net(image)
        h.remove()
    assert torch.equal(hit[1]["maps"], ref[1]["maps"])


def test_parameter_count_matches_the_published_network():
    # Newell et al.: 8 stacks, 256 features, 16 MPII joints ~ 25.6 M. The official PyTorch port
    # (princeton-vl/pytorch_stacked_hourglass) built with 3 input channels gives 32,819,328 from
    # parameters(), of which 7,385,216 sit in 1x1 `skip_layer`s it creates but never calls (in == out);
    # the parameters it uses number 25,434,112 (2 stacks: 6,570,400), which this network reproduces exactly.
    def count(stacks: int) -> int:
        net = StackedHourglass(16, MapDecoder("integral"), num_stacks=stacks, width=256, num_levels=4)
        return sum(p.numel() for p in net.parameters())

    n8 = count(8)
    assert n8 == 25_434_112
    assert abs(n8 - 25.6e6) / 25.6e6 < 0.03
    assert count(2) == 6_570_400


@pytest.mark.slow
@pytest.mark.parametrize("method,bins", [("h1", "[1,16]"), ("i1", "[16,16]")])
def test_hourglass_preset_trains_a_few_steps_with_per_stack_depths(make_cfg, tmp_path, method, bins):
    from posereg.recipes.train import train_task

    cfg = make_cfg("experiment=integral_synth3d_hourglass", f"method={method}", f"method.net.depth_bins={bins}",
                   "method.net.width=16", "cut=all", "trainer.max_epochs=1", "trainer.limit_train_batches=2")
    metrics = train_task(cfg, run_path=tmp_path / "run", overrides=[], multirun=False)
    assert metrics["global_step"] == 2
    assert {"test/mpjpe@stack1", "test/mpjpe@stack2"} <= set(metrics["test"])
    assert all(v > 0 for k, v in metrics["test"].items() if k.startswith("test/mpjpe"))
