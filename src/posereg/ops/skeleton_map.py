"""DeepSkeleton skeleton maps: one coloured stick per bone, split into a foreground and a background map.

Wan et al. (arXiv 1711.10796; methods.md §4) draw every bone as a stick of width w in its own colour.
Where sticks overlap in 2D the pixel looks along the camera ray: the foreground map takes the colour of
the nearest bone, the background map the colour of the second nearest; a pixel covered by one bone only
is in the foreground map (background 0). The paper lost its colour table and stick widths; the
surrogates here follow the first author's later code: anti-aliased sticks 3 px wide on a 56² map for a
224² crop, one fixed colour per bone, values in [0, 1].

Conventions:

* Coordinates are continuous crop pixels: pixel (row i, col j) has its centre at (j+0.5, i+0.5). A map
  of size (h, w) covers the same crop, so map pixel (i, j) sits at crop ((j+0.5)·W_in/w, (i+0.5)·H_in/h).
  `width` is in map pixels.
* A stick is the set of points within width/2 of the segment (round caps, like cv2's thick lines).
  Hard sticks: coverage 1 where the distance d of the pixel centre to the segment is <= width/2.
  Anti-aliased sticks: coverage = length of [d-1/2, d+1/2] ∩ [-width/2, width/2], a one-pixel box
  filter across the stick, = clamp(width/2 + 1/2 - d, 0, min(1, width)). It is 1 on the centre line
  (width >= 1) and exact for axis-aligned sticks: a column across a horizontal stick sums to width.
* Order: a bone's depth at a pixel is the linear interpolation of its endpoint depths at the parameter t
  of the segment point closest to the pixel centre, that point kept at least 0.5 map px inside the
  segment (`DEPTH_INSET`). Among the covering bones (coverage > 0) the smallest depth goes to the
  foreground and the next to the background. The inset matters only around a joint shared by two
  bones, where both closest points would be the joint itself and tie: there the bone heading towards
  the camera is in front, which, unlike an index tie-break, commutes with a horizontal flip. Exact ties
  left, and every sample without depth order, use the index rule: later bones in front (the painter's
  order of drawing the bones in turn). The index rule does not commute with a flip: where two bones
  whose mirror bones come in the other order overlap (e.g. crossed arms), the mirrored pose puts the
  other bone in front.
* A bone is drawn only when both endpoints have 2D labels (x and y weights > 0, finite coordinates).
  A sample has depth order when `order="depth"`, at least one bone is drawn and every drawn bone has
  z labels (z weight > 0, finite depth) on both endpoints. Otherwise the whole sample uses the index
  rule (mixing the two rules within a pose would make the order inconsistent) and `has_depth_order` is
  False, so a background loss can be masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from posereg.errors import ConfigError
from posereg.skeletons import JointSet, get_joint_set

ORDERS = ("depth", "index")
DEPTH_INSET = 0.5  # map px: how far inside a bone its depth is sampled at least (breaks ties at shared joints)
# Endpoints of undrawn bones are moved here (map pixels): far from every pixel, and finite, so that
# unlabelled (NaN) joints cannot leak NaN into the coverage.
_FAR = -1.0e6

# The 26 non-black colours of {0, 1/2, 1}³: the 7 cube corners (pairwise >= 1 apart), the 6 face
# centres (>= 0.71 from all of the above), then the 12 edge midpoints and grey (>= 0.5). Black is
# excluded because 0 means "no bone".
_PALETTE: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0),
    (1.0, 1.0, 1.0),
    (1.0, 0.5, 0.5), (0.5, 1.0, 0.5), (0.5, 0.5, 1.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0),
    (1.0, 0.5, 0.0), (0.0, 1.0, 0.5), (0.5, 0.0, 1.0), (1.0, 0.0, 0.5), (0.5, 1.0, 0.0), (0.0, 0.5, 1.0),
    (1.0, 1.0, 0.5), (0.5, 1.0, 1.0), (1.0, 0.5, 1.0), (0.5, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.5),
    (0.5, 0.5, 0.5),
)


class SkeletonMaps(NamedTuple):
    """Rendered skeleton maps of a batch; bone ids index the `bones` list and are -1 where empty."""

    foreground: torch.Tensor  # (B,3,H,W) float32 in [0,1]: colour x coverage of the nearest covering bone
    background: torch.Tensor  # (B,3,H,W) float32 in [0,1]: the same for the second nearest bone
    fg_bone: torch.Tensor  # (B,H,W) long
    bg_bone: torch.Tensor  # (B,H,W) long
    has_depth_order: torch.Tensor  # (B,) bool: the background map is a depth-ordered target
    drawn: torch.Tensor  # (B,num_bones) bool: both endpoints labelled in 2D


def default_bone_colors(num_bones: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(num_bones,3) float32 fixed, pairwise distinct colours in [0,1], none black (max 26 bones)."""
    if not 0 < num_bones <= len(_PALETTE):
        raise ConfigError(f"skeleton map: the default colour table has 1..{len(_PALETTE)} bones, got {num_bones}")
    return torch.tensor(_PALETTE[:num_bones], dtype=torch.float32, device=device)


def skeleton_bones(joint_set: str | JointSet, root: str | None = None) -> list[tuple[int, int]]:
    """The joint set's bones in its own order, each oriented (parent, child) in the tree rooted at `root`.

    The default root is ``thorax`` when the set has one (DeepSkeleton roots its tree at the thorax),
    else the set's own root. Rerooting only turns bones around: the bone set, its order (hence colours
    and the index rule) and the rendered maps do not change. For ``mpii16`` (root pelvis in posereg)
    the only change is the pelvis-thorax bone, which becomes (thorax, pelvis); 15 bones either way.
    """
    js = get_joint_set(joint_set)
    name = root if root is not None else ("thorax" if "thorax" in js.names else js.names[js.root])
    if name not in js.names:
        raise ConfigError(f"skeleton map root {name!r} is not a joint of {js.name}; choose one of {js.names}")
    hops = _hops_from(js.names.index(name), js.bones, js.num_joints)
    # the endpoint fewer hops from the root is the parent; equal hops (a cycle edge) keep their order
    return [(p, c) if hops[p] <= hops[c] else (c, p) for p, c in js.bones]


def _hops_from(root: int, bones: Sequence[tuple[int, int]], num_joints: int) -> list[int]:
    """Breadth-first hop count of every joint from root along the (undirected) bones."""
    hops = [num_joints] * num_joints
    hops[root] = 0
    frontier = [root]
    while frontier:
        nxt = []
        for j in frontier:
            for a, b in bones:
                other = b if a == j else a if b == j else -1
                if other >= 0 and hops[other] > hops[j] + 1:
                    hops[other] = hops[j] + 1
                    nxt.append(other)
        frontier = nxt
    return hops


def flip_bone_index(bones: Sequence[tuple[int, int]], flip_index: Sequence[int]) -> list[int]:
    """For each bone, the bone joining the flip images of its joints (a horizontal-flip permutation).

    For depth-ordered samples, rendering a mirrored pose with `colors` equals mirroring the original
    maps rendered with `colors[flip_bone_index(...)]`: left/right counterpart bones swap colours.
    """
    lookup = {frozenset(b): k for k, b in enumerate(bones)}
    out = []
    for p, c in bones:
        k = lookup.get(frozenset((flip_index[p], flip_index[c])))
        if k is None:
            raise ConfigError(f"skeleton map bones: bone ({p}, {c}) has no mirror bone under flip_index")
        out.append(k)
    return out


def _pair(value: int | Sequence[int], setting: str) -> tuple[int, int]:
    """(h, w) from an int or a pair; ConfigError unless both are positive."""
    try:
        h, w = tuple(value)  # type: ignore[arg-type]
    except TypeError:  # a single number
        h, w = value, value
    if int(h) <= 0 or int(w) <= 0:
        raise ConfigError(f"skeleton map {setting} must be positive, got {value}")
    return int(h), int(w)


def _check_inputs(
    joints_2d: torch.Tensor, depth: torch.Tensor | None, weights: torch.Tensor, bones: Sequence[tuple[int, int]]
) -> None:
    """ConfigError for shapes that do not match (B,J,2), (B,J), (B,J,2|3) and bones within 0..J-1."""
    if joints_2d.dim() != 3 or joints_2d.shape[-1] != 2:
        raise ConfigError(f"skeleton map joints_2d must be (B,J,2), got {tuple(joints_2d.shape)}")
    bj = tuple(joints_2d.shape[:2])
    if depth is not None and tuple(depth.shape) != bj:
        raise ConfigError(f"skeleton map depth must be (B,J) = {bj}, got {tuple(depth.shape)}")
    if tuple(weights.shape[:2]) != bj or weights.dim() != 3 or weights.shape[-1] not in (2, 3):
        raise ConfigError(f"skeleton map weights must be (B,J,3) with (B,J) = {bj}, got {tuple(weights.shape)}")
    if len(bones) == 0 or any(not (0 <= j < bj[1]) for bone in bones for j in bone):
        raise ConfigError(f"skeleton map bones must be a non-empty list of (parent, child) in 0..{bj[1] - 1}")


def _check_colors(colors: torch.Tensor | Sequence, num_bones: int, device: torch.device) -> torch.Tensor:
    """(num_bones,3) float32 colours on device; ConfigError for another shape or values outside [0,1]."""
    col = torch.as_tensor(colors, dtype=torch.float32, device=device)
    if tuple(col.shape) != (num_bones, 3):
        raise ConfigError(f"skeleton map colors must be (num_bones,3) = ({num_bones},3), got {tuple(col.shape)}")
    if not bool(((col >= 0) & (col <= 1)).all()):
        raise ConfigError("skeleton map colors must lie in [0, 1]")
    return col


def render_skeleton_maps(
    joints_2d: torch.Tensor,
    depth: torch.Tensor | None,
    weights: torch.Tensor,
    bones: Sequence[tuple[int, int]],
    colors: torch.Tensor | Sequence,
    size: int | Sequence[int] = 56,
    input_size: int | Sequence[int] = 224,
    width: float = 3.0,
    antialias: bool = True,
    order: str = "depth",
) -> SkeletonMaps:
    """Foreground/background skeleton maps (B,3,H,W) of (B,J,2) crop-pixel joints; see the module doc.

    `depth` (B,J) is the camera z (any unit, smaller is nearer; None = no depth), `weights` (B,J,3) the
    per-axis label weights, `size`/`input_size` the map and crop sizes as int or (H,W), `order` "depth"
    (depth where the sample has it, else the index rule) or "index" (the index rule for every sample).
    Computed in float32 on the joints' device; not differentiable.
    """
    _check_inputs(joints_2d, depth, weights, bones)
    if width <= 0:
        raise ConfigError(f"skeleton map width must be > 0 map pixels, got {width}")
    if order not in ORDERS:
        raise ConfigError(f"skeleton map order must be one of {ORDERS}, got {order!r}")
    dev = joints_2d.device
    h, w = _pair(size, "size")
    in_h, in_w = _pair(input_size, "input_size")
    num_bones = len(bones)
    # Bones are processed last-first, so min()'s first-index tie-break puts later bones in front.
    rev = torch.as_tensor(list(bones), dtype=torch.long, device=dev).flip(0)
    col = _check_colors(colors, num_bones, dev).flip(0)

    with torch.no_grad():
        scale = torch.tensor([w / in_w, h / in_h], dtype=torch.float32, device=dev)
        xy = joints_2d.detach().to(torch.float32) * scale  # map pixels
        wts = weights.detach()
        has_xy = (wts[..., 0] > 0) & (wts[..., 1] > 0) & torch.isfinite(xy).all(dim=-1)
        drawn = has_xy[:, rev[:, 0]] & has_xy[:, rev[:, 1]]  # (B,nb)
        a = torch.where(drawn[..., None], xy[:, rev[:, 0]], _FAR)
        b = torch.where(drawn[..., None], xy[:, rev[:, 1]], _FAR)
        ordered = _depth_ordered(depth, wts, rev, drawn) if order == "depth" else drawn.new_zeros(drawn.shape[0])
        key, cov = _bone_keys_and_coverage(a, b, depth, rev, ordered, (h, w), width, antialias)
        fg_key, fg_k = key.min(dim=1)  # (B,h,w)
        key.scatter_(1, fg_k[:, None], torch.inf)  # take the foreground bone out, keep the next nearest
        bg_key, bg_k = key.min(dim=1)
        fg, fg_bone = _paint(cov, col, fg_k, torch.isfinite(fg_key))
        bg, bg_bone = _paint(cov, col, bg_k, torch.isfinite(bg_key))
    return SkeletonMaps(fg, bg, fg_bone, bg_bone, ordered, drawn.flip(1))


def _depth_ordered(
    depth: torch.Tensor | None, weights: torch.Tensor, rev: torch.Tensor, drawn: torch.Tensor
) -> torch.Tensor:
    """(B,) bool: some bone is drawn and every drawn bone has z labels on both endpoints."""
    if depth is None or weights.shape[-1] < 3:
        return drawn.new_zeros(drawn.shape[0])
    has_z = (weights[..., 2] > 0) & torch.isfinite(depth)
    bone_z = has_z[:, rev[:, 0]] & has_z[:, rev[:, 1]]
    return drawn.any(dim=1) & (bone_z | ~drawn).all(dim=1)


def _bone_keys_and_coverage(
    a: torch.Tensor,
    b: torch.Tensor,
    depth: torch.Tensor | None,
    rev: torch.Tensor,
    ordered: torch.Tensor,
    size: tuple[int, int],
    width: float,
    antialias: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (B,nb,h,w) pixel: the order key (depth, or 0 for the index rule; inf if not covered) and coverage.

    Pixel centres are written in each bone's frame: u along the bone from `a`, v across it. Both are
    sums of a (B,nb,1,w) x term and a (B,nb,h,1) y term, so only the sums are full size; the distance to
    the segment is then |(u - clamp(u, 0, L), v)| and the closest point's parameter t = clamp(u, 0, L)/L.
    Order keys of index-rule samples are all 0, so min()'s tie-break decides.
    """
    h, w = size
    dev = a.device
    px = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    py = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    d = b - a  # (B,nb,2)
    length = d.norm(dim=-1)  # (B,nb)
    inv_len = torch.where(length > 0, 1.0 / length, 0.0)
    # a zero-length bone (a dot) gets the x axis as direction: u, v are then the offsets from `a`
    cos = torch.where(length > 0, d[..., 0] * inv_len, 1.0)[..., None, None]
    sin = (d[..., 1] * inv_len)[..., None, None]
    rel_x = (px - a[..., 0:1])[..., None, :]  # (B,nb,1,w)
    rel_y = (py - a[..., 1:2])[..., :, None]  # (B,nb,h,1)
    u = rel_x * cos + rel_y * sin
    v = rel_y * cos - rel_x * sin
    length4 = length[..., None, None]
    if depth is not None and bool(ordered.any()):
        z = torch.nan_to_num(depth.detach().to(torch.float32)) * ordered[:, None]  # 0 for index-rule samples
        za, zb = z[:, rev[:, 0]], z[:, rev[:, 1]]
        slope = ((zb - za) * inv_len)[..., None, None]
        inset = (0.5 * length).clamp(max=DEPTH_INSET)[..., None, None]
        # depth along the bone at the closest point, kept `inset` inside the segment
        key = torch.clamp(u, min=inset, max=length4 - inset).mul_(slope).add_(za[..., None, None])
    else:
        key = torch.zeros_like(u)
    u_in = torch.clamp(u, min=torch.zeros_like(length4), max=length4)
    dist2 = u.sub_(u_in).square_().add_(v.square_())  # squared distance to the closest segment point
    half = 0.5 * width
    if antialias:
        # one-pixel box filter across the stick; > 0 exactly where dist < width/2 + 1/2
        cov = dist2.sqrt_().neg_().add_(half + 0.5).clamp_(0.0, min(1.0, width))
        uncovered = cov == 0
    else:
        uncovered = dist2 > half * half
        cov = (~uncovered).to(torch.float32)
    return key.masked_fill_(uncovered, torch.inf), cov


def _paint(
    cov: torch.Tensor, col: torch.Tensor, k: torch.Tensor, present: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,3,h,w) colour x coverage of bone k (reversed index) per pixel and its bone id (-1 where absent)."""
    num_bones = col.shape[0]
    amount = cov.gather(1, k[:, None]).squeeze(1) * present  # (B,h,w)
    rgb = col.t()[:, k].permute(1, 0, 2, 3) * amount[:, None]  # (B,3,h,w)
    bone = torch.where(present, num_bones - 1 - k, -1)
    return rgb.contiguous(), bone
