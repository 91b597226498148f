"""Attention heads and flip helpers on hand-made maps."""

from __future__ import annotations

import math

import pytest
import torch

from posereg.errors import ConfigError
from posereg.ops import (
    aggregate_context,
    argmax_decode,
    average_flip,
    confidence_from_prob,
    depth_attention,
    flip_coords_unit,
    flip_maps,
    joint_probability,
    soft_argmax,
)

FLIP = [0, 2, 1, 4, 3]  # joint 0 central, (1,2) and (3,4) left/right pairs


def test_depth_attention_by_hand() -> None:
    prob = torch.tensor([[0.5, 0.5], [0.0, 0.0]])[None, None]
    depth = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])[None, None]
    # 0.5 * sigmoid(0) + 0.5 * sigmoid(ln 3) = 0.5 * 0.5 + 0.5 * 0.75
    assert depth_attention(prob, depth).item() == pytest.approx(0.625)
    with pytest.raises(ConfigError, match="same"):
        depth_attention(prob, depth[..., :1])


def test_confidence_by_hand() -> None:
    prob = torch.tensor([[0.1, 0.2, 0.0], [0.3, 0.1, 0.0], [0.0, 0.0, 0.3]])[None, None]
    # 2x2 windows: 0.7, 0.3, 0.4, 0.4
    assert confidence_from_prob(prob).item() == pytest.approx(0.7)
    assert confidence_from_prob(torch.tensor([[[[0.6, 0.4]]]])).item() == pytest.approx(1.0)
    delta = torch.zeros(2, 3, 5, 5)
    delta[..., 4, 4] = 1.0
    assert torch.allclose(confidence_from_prob(delta), torch.ones(2, 3))
    assert torch.allclose(confidence_from_prob(torch.full((1, 1, 4, 4), 1 / 16)), torch.tensor(0.25))


def test_joint_probability_by_hand() -> None:
    raw = torch.full((1, 2, 3, 3), -2.0)
    raw[0, 0, 1, 1] = 0.0
    raw[0, 1, 2, 0] = math.log(3.0)
    assert torch.allclose(joint_probability(raw), torch.tensor([[0.5, 0.75]]))
    assert joint_probability(torch.zeros(1, 1, 2, 2, 2)).item() == pytest.approx(0.5)


def test_aggregate_context_by_hand() -> None:
    part = torch.tensor([[[0.2, 0.4]]])
    ctx = torch.tensor([[[[0.6, 0.8], [1.0, 0.0]]]])
    p = torch.tensor([[[1.0, 3.0]]])
    # context mean (0.9, 0.2); 0.8 * part + 0.2 * context
    assert torch.allclose(aggregate_context(part, ctx, p), torch.tensor([[[0.34, 0.36]]]))
    assert torch.allclose(aggregate_context(part, ctx, p, alpha=1.0), part)


def test_aggregate_context_fallbacks() -> None:
    part = torch.tensor([[[0.2, 0.4], [0.5, 0.5]]], requires_grad=True)
    ctx = torch.rand(1, 2, 2, 2, requires_grad=True)
    p = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    out = aggregate_context(part, ctx, p)
    assert torch.allclose(out[0, 0], part[0, 0])  # sum p = 0: part prediction
    assert torch.allclose(out[0, 1], 0.8 * part[0, 1] + 0.2 * ctx[0, 1].mean(0))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (part, ctx, p))
    empty = aggregate_context(part, torch.zeros(1, 2, 0, 2), torch.zeros(1, 2, 0))
    assert torch.equal(empty, part)
    with pytest.raises(ConfigError, match="alpha"):
        aggregate_context(part, ctx, p, alpha=1.5)


def test_flip_twice_is_identity() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 5, 6, 7, generator=g)
    vol = torch.randn(2, 5, 3, 6, 7, generator=g)
    coords = torch.rand(2, 5, 3, generator=g)
    assert torch.equal(flip_maps(flip_maps(maps, FLIP), FLIP), maps)
    assert torch.equal(flip_maps(flip_maps(vol, FLIP), FLIP), vol)
    assert torch.allclose(flip_coords_unit(flip_coords_unit(coords, FLIP), FLIP), coords)


def test_flip_maps_agrees_with_flip_coords() -> None:
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(2, 5, 6, 7, generator=g) * 4
    # center convention: decoding the mirrored map equals mirroring the decoded coordinates
    assert torch.allclose(argmax_decode(flip_maps(maps, FLIP)), flip_coords_unit(argmax_decode(maps), FLIP))
    flipped = soft_argmax(flip_maps(maps, FLIP))
    assert torch.allclose(flipped, flip_coords_unit(soft_argmax(maps), FLIP), atol=1e-6)
    vol = torch.randn(1, 5, 3, 4, 5, generator=g)
    flipped3 = soft_argmax(flip_maps(vol, FLIP))
    assert torch.allclose(flipped3, flip_coords_unit(soft_argmax(vol), FLIP), atol=1e-6)
    c = torch.tensor([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9], [0.0, 0.1, 0.2], [0.3, 0.3, 0.3]]])
    f = flip_coords_unit(c, FLIP)
    assert torch.allclose(f[0, 1], torch.tensor([0.3, 0.8, 0.9]))
    assert torch.allclose(f[0, 0], torch.tensor([0.9, 0.2, 0.3]))


def test_average_flip() -> None:
    a, b = torch.tensor([0.2, 0.4]), torch.tensor([0.4, 0.0])
    assert torch.allclose(average_flip(a, b), torch.tensor([0.3, 0.2]))
    with pytest.raises(ConfigError, match="flip_index"):
        flip_maps(torch.zeros(1, 3, 2, 2), FLIP)
