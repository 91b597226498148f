"""DeepSkeleton skeleton maps: colours on hand-made poses, depth order, stick width, flips, 2D-only rule."""

from __future__ import annotations

import math

import pytest
import torch

from posereg.bench.skeleton_map import random_poses, run_skeleton_map_bench
from posereg.errors import ConfigError
from posereg.ops import (
    default_bone_colors,
    flip_bone_index,
    render_skeleton_maps,
    skeleton_bones,
)
from posereg.skeletons import get_joint_set

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
TWO_COLORS = torch.tensor([RED, BLUE])
CROSS_BONES = [(0, 1), (2, 3)]


def _cross(depth_a: tuple[float, float], depth_b: tuple[float, float], z_weight: float = 1.0):
    """A horizontal bone 0 (y = 8.5) and a vertical bone 1 (x = 8.5) crossing at map pixel (8, 8) of 16²."""
    joints = torch.tensor([[[0.5, 8.5], [16.5, 8.5], [8.5, 0.5], [8.5, 16.5]]])
    depth = torch.tensor([[*depth_a, *depth_b]])
    weights = torch.ones(1, 4, 3)
    weights[..., 2] = z_weight
    return joints, depth, weights


def _render(joints, depth, weights, bones=CROSS_BONES, colors=TWO_COLORS, **kw):
    kw = {"size": 16, "input_size": 16, **kw}
    return render_skeleton_maps(joints, depth, weights, bones, colors, **kw)


@pytest.mark.parametrize("antialias", [False, True])
def test_pixel_on_a_bone_has_its_colour(antialias: bool) -> None:
    # crop 64² -> map 16²: crop (22, 34) is map (5.5, 8.5), the centre of map pixel (row 8, col 5)
    joints = torch.tensor([[[10.0, 34.0], [58.0, 34.0], [2.0, 2.0], [62.0, 62.0]]])
    maps = _render(joints, None, torch.ones(1, 4, 3), size=16, input_size=64, antialias=antialias)
    assert maps.foreground[0, :, 8, 5].tolist() == list(RED)
    assert maps.fg_bone[0, 8, 5] == 0 and maps.bg_bone[0, 8, 5] == -1
    assert maps.background[0, :, 8, 5].tolist() == [0.0, 0.0, 0.0]
    # the diagonal bone passes exactly through pixel centres (j+0.5, j+0.5): full coverage there
    assert maps.foreground[0, :, 3, 3].tolist() == list(BLUE)
    assert maps.fg_bone[0, 3, 3] == 1
    assert maps.fg_bone[0, 0, 15] == -1 and maps.foreground[0, :, 0, 15].abs().sum() == 0


def test_nearer_bone_is_foreground_and_swapping_depths_swaps_maps() -> None:
    near_a = _render(*_cross((1000.0, 1000.0), (2000.0, 2000.0)))
    assert near_a.foreground[0, :, 8, 8].tolist() == list(RED)
    assert near_a.background[0, :, 8, 8].tolist() == list(BLUE)
    assert (near_a.fg_bone[0, 8, 8].item(), near_a.bg_bone[0, 8, 8].item()) == (0, 1)
    # away from the crossing only one bone covers: foreground only
    assert near_a.fg_bone[0, 8, 2] == 0 and near_a.bg_bone[0, 8, 2] == -1
    assert near_a.fg_bone[0, 2, 8] == 1 and near_a.background[0, :, 2, 8].abs().sum() == 0
    near_b = _render(*_cross((2000.0, 2000.0), (1000.0, 1000.0)))
    assert torch.equal(near_b.foreground[0, :, 8, 8], near_a.background[0, :, 8, 8])
    assert torch.equal(near_b.background[0, :, 8, 8], near_a.foreground[0, :, 8, 8])
    assert near_a.has_depth_order.tolist() == near_b.has_depth_order.tolist() == [True]
    # overlap is the 3x3 block around the crossing (width 3, bones on pixel centres): it swaps, the rest stays
    both = near_a.bg_bone[0] >= 0
    assert int(both.sum()) == 9
    assert torch.equal(near_b.fg_bone[0][both], near_a.bg_bone[0][both])
    assert torch.equal(near_b.fg_bone[0][~both], near_a.fg_bone[0][~both])


def test_depth_is_interpolated_along_the_bone_at_the_closest_point() -> None:
    # bone 0 runs from depth 1000 to 3000 + 2*dz; at the crossing (t = 0.5) its depth is 2000 + dz
    for dz, front in ((50.0, 1), (-50.0, 0)):
        maps = _render(*_cross((1000.0, 3000.0 + 2 * dz), (2000.0, 2000.0)))
        assert maps.fg_bone[0, 8, 8] == front and maps.bg_bone[0, 8, 8] == 1 - front


@pytest.mark.parametrize("width", [1.0, 2.0, 3.0, 5.0, 0.5])
@pytest.mark.parametrize("offset", [0.0, 0.5, 0.25])
def test_stick_width_covers_the_expected_pixels(width: float, offset: float) -> None:
    y = 16.5 + offset  # horizontal bone across a 32² map, `offset` px below row 16's centre
    joints = torch.tensor([[[-4.0, y], [36.0, y], [y, -4.0], [y, 36.0]]])  # and its vertical twin
    weights = torch.ones(1, 4, 3)
    cols = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    for bone, axis in ((0, 0), (1, 1)):  # horizontal: sum over rows (axis 0), vertical: over columns
        mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]]) if bone == 0 else torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        w = weights * mask[..., None]
        soft = _render(joints, None, w, colors=cols, size=32, input_size=32, width=width)
        hard = _render(joints, None, w, colors=cols, size=32, input_size=32, width=width, antialias=False)
        per_line_soft = soft.foreground[0, 0].sum(dim=axis)
        per_line_hard = (hard.fg_bone[0] == bone).sum(dim=axis)
        # anti-aliased: a box filter across the stick, so every line across it sums to the width
        assert torch.allclose(per_line_soft, torch.full((32,), width), atol=1e-5)
        expected = sum(1 for k in range(-8, 9) if abs(k - offset) <= width / 2)  # centres within width/2
        assert per_line_hard.tolist() == [expected] * 32
        assert abs(expected - width) <= 1


def test_flipped_sample_equals_flipped_maps_with_left_right_colours_swapped() -> None:
    js = get_joint_set("mpii16")
    bones = skeleton_bones(js)
    perm = flip_bone_index(bones, js.flip_index)
    colors = default_bone_colors(len(bones))
    joints, depth, weights = random_poses(8, 224, seed=3)
    weights[1, 15, :2] = 0.0  # an unlabelled left wrist: its bone is absent in both renders
    fi = list(js.flip_index)
    flipped_joints = joints[:, fi].clone()
    flipped_joints[..., 0] = 224.0 - flipped_joints[..., 0]
    kw = {"size": 56, "input_size": 224}
    out = render_skeleton_maps(flipped_joints, depth[:, fi], weights[:, fi], bones, colors, **kw)
    ref = render_skeleton_maps(joints, depth, weights, bones, colors[perm], **kw)
    assert out.has_depth_order.all() and (out.bg_bone >= 0).sum() > 500  # plenty of overlaps tested
    assert torch.allclose(out.foreground, ref.foreground.flip(-1), atol=1e-4)
    assert torch.allclose(out.background, ref.background.flip(-1), atol=1e-4)
    perm_t = torch.tensor(perm + [-1])  # index -1 maps -1 to -1
    assert torch.equal(out.fg_bone, perm_t[ref.fg_bone.flip(-1)])
    assert torch.equal(out.bg_bone, perm_t[ref.bg_bone.flip(-1)])
    assert torch.equal(out.drawn, ref.drawn[:, perm])


def test_shared_joint_orders_bones_by_where_they_head() -> None:
    # two bones leave joint 0 at (8.5, 8.5): bone 0 heads away from the camera, bone 1 towards it
    joints = torch.tensor([[[8.5, 8.5], [15.5, 8.5], [8.5, 15.5]]])
    depth = torch.tensor([[2000.0, 2500.0, 1500.0]])
    maps = _render(joints, depth, torch.ones(1, 3, 3), bones=[(0, 1), (0, 2)])
    assert maps.fg_bone[0, 8, 8] == 1 and maps.bg_bone[0, 8, 8] == 0
    maps = _render(joints, torch.tensor([[2000.0, 1500.0, 2500.0]]), torch.ones(1, 3, 3), bones=[(0, 1), (0, 2)])
    assert maps.fg_bone[0, 8, 8] == 0 and maps.bg_bone[0, 8, 8] == 1


def test_2d_only_sample_uses_the_index_rule_and_is_marked() -> None:
    joints, depth, w3d = _cross((1000.0, 1000.0), (2000.0, 2000.0))  # depth says bone 0 is in front
    _, _, w2d = _cross((1000.0, 1000.0), (2000.0, 2000.0), z_weight=0.0)
    w_partial = w3d.clone()
    w_partial[0, 3, 2] = 0.0  # one joint without z: the whole sample falls back to the index rule
    maps = _render(joints.expand(3, -1, -1), depth.expand(3, -1), torch.cat([w3d, w2d, w_partial]))
    assert maps.has_depth_order.tolist() == [True, False, False]
    assert maps.fg_bone[:, 8, 8].tolist() == [0, 1, 1]  # index rule: the later bone is in front
    assert maps.bg_bone[:, 8, 8].tolist() == [1, 0, 0]
    by_index = _render(joints, depth, w3d, order="index")
    assert by_index.has_depth_order.tolist() == [False]
    assert (by_index.fg_bone[0, 8, 8].item(), by_index.bg_bone[0, 8, 8].item()) == (1, 0)


def test_bone_with_an_unlabelled_endpoint_is_absent() -> None:
    joints, depth, weights = _cross((1000.0, 1000.0), (2000.0, 2000.0))
    joints = joints.clone()
    joints[0, 3] = float("nan")  # unlabelled joints may carry garbage
    weights[0, 3, :2] = 0.0
    maps = _render(joints, depth, weights)
    assert maps.drawn.tolist() == [[True, False]]
    assert not (maps.fg_bone == 1).any() and (maps.bg_bone == -1).all()
    assert torch.isfinite(maps.foreground).all() and maps.background.abs().sum() == 0
    assert int((maps.fg_bone[0] == 0).sum()) == 3 * 16  # bone 0 intact: 3 rows across the map
    assert maps.has_depth_order.tolist() == [True]  # the drawn bone has depth on both ends
    weights[0, 1, 0] = 0.0  # and now bone 0 too: nothing drawn, no depth order to learn from
    empty = _render(joints, depth, weights)
    assert (empty.fg_bone == -1).all() and empty.foreground.abs().sum() == 0
    assert empty.has_depth_order.tolist() == [False]


def test_device_dtype_and_batch_independence() -> None:
    joints, depth, weights = random_poses(4, 224, seed=1)
    bones = skeleton_bones("mpii16")
    colors = default_bone_colors(len(bones))
    maps = render_skeleton_maps(joints.double(), depth.double(), weights.double(), bones, colors.double())
    assert maps.foreground.dtype == maps.background.dtype == torch.float32
    assert maps.foreground.shape == maps.background.shape == (4, 3, 56, 56)
    assert maps.fg_bone.shape == (4, 56, 56) and maps.fg_bone.dtype == torch.long
    assert maps.foreground.device == joints.device and maps.has_depth_order.dtype == torch.bool
    assert float(maps.foreground.min()) >= 0 and float(maps.foreground.max()) <= 1
    one = render_skeleton_maps(joints[2:3], depth[2:3], weights[2:3], bones, colors)
    assert torch.equal(one.foreground[0], maps.foreground[2]) and torch.equal(one.bg_bone[0], maps.bg_bone[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    joints, depth, weights = random_poses(4, 224, seed=2)
    bones = skeleton_bones("mpii16")
    colors = default_bone_colors(len(bones))
    cpu = render_skeleton_maps(joints, depth, weights, bones, colors)
    gpu = render_skeleton_maps(joints.cuda(), depth.cuda(), weights.cuda(), bones, colors)
    assert gpu.foreground.device.type == "cuda"
    assert torch.allclose(gpu.foreground.cpu(), cpu.foreground, atol=1e-4)
    assert (gpu.fg_bone.cpu() != cpu.fg_bone).float().mean() < 1e-3


def test_default_colours_are_distinct_and_counterparts_differ() -> None:
    colors = default_bone_colors(26)
    dist = torch.cdist(colors, colors) + 9 * torch.eye(26)
    assert float(dist.min()) == pytest.approx(0.5)
    assert float(colors.sum(dim=1).min()) > 0  # no black: 0 means "no bone"
    assert float(torch.cdist(colors[:13], colors[:13]).add(9 * torch.eye(13)).min()) == pytest.approx(math.sqrt(0.5))
    for name in ("mpii16", "h36m17"):
        js = get_joint_set(name)
        bones = skeleton_bones(js)
        perm = flip_bone_index(bones, js.flip_index)
        c = default_bone_colors(len(bones))
        swapped = [i for i, k in enumerate(perm) if k != i]
        assert len(swapped) == 12  # 6 leg and 6 arm bones
        assert all(not torch.equal(c[i], c[perm[i]]) for i in swapped)
    with pytest.raises(ConfigError, match="colour table"):
        default_bone_colors(27)


def test_paper_bone_lists() -> None:
    mpii = get_joint_set("mpii16")
    bones = skeleton_bones("mpii16")
    assert len(bones) == 15 and mpii.root == mpii.index("pelvis")
    thorax, pelvis = mpii.index("thorax"), mpii.index("pelvis")
    # same bones as posereg's pelvis-rooted tree, only the pelvis-thorax bone turned round
    assert [b for b in bones if b not in mpii.bones] == [(thorax, pelvis)]
    children = sorted(c for _, c in bones)
    assert children == sorted(set(range(16)) - {thorax})  # a tree rooted at the thorax
    assert flip_bone_index(bones, mpii.flip_index) == [5, 4, 3, 2, 1, 0, 6, 7, 8, 14, 13, 12, 11, 10, 9]
    h36m = get_joint_set("h36m17")
    assert skeleton_bones("h36m17") == list(h36m.bones) and len(h36m.bones) == 16
    perm = flip_bone_index(h36m.bones, h36m.flip_index)
    assert [perm[k] for k in perm] == list(range(16))
    with pytest.raises(ConfigError, match="root"):
        skeleton_bones("h36m17", root="thorax")


def test_bad_settings_are_config_errors() -> None:
    joints, depth, weights = _cross((1.0, 1.0), (2.0, 2.0))
    with pytest.raises(ConfigError, match="width"):
        _render(joints, depth, weights, width=0.0)
    with pytest.raises(ConfigError, match="order"):
        _render(joints, depth, weights, order="z")
    with pytest.raises(ConfigError, match="colors"):
        _render(joints, depth, weights, colors=torch.ones(3, 3))
    with pytest.raises(ConfigError, match="colors"):
        _render(joints, depth, weights, colors=2 * TWO_COLORS)
    with pytest.raises(ConfigError, match="bones"):
        _render(joints, depth, weights, bones=[(0, 4), (2, 3)])
    with pytest.raises(ConfigError, match="size"):
        _render(joints, depth, weights, size=0)
    with pytest.raises(ConfigError, match="mirror"):
        flip_bone_index([(0, 1)], [0, 2, 1])


def test_bench_reports_the_render_to_step_ratio() -> None:
    r = run_skeleton_map_bench(quick=True, batch_size=2, size=16, input_size=64, model="resnet18")
    assert r["render_ms"] > 0 and r["step_ms"] > 0
    assert r["ratio"] == pytest.approx(r["render_ms"] / r["step_ms"])
    assert r["meets_goal"] == (r["ratio"] <= 0.05) and r["bones"] == 15
    assert 0 < r["bg_pixel_fraction"] < r["fg_pixel_fraction"] < 1
