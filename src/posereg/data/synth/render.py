"""SynthPose rasterizer: cluttered backgrounds and depth-ordered shaded body parts with cv2 primitives.

Everything is drawn directly in crop pixels (the crop of a pinhole image is a pinhole image, see
``posereg.geometry``), with cv2's sub-pixel ``shift`` so part positions are exact to 1/16 px.
Parts are kept as parallel arrays (``Parts``) so a whole scene is prepared with a few numpy
operations and the python loop only issues the cv2 calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from posereg.data.synth import body as B
from posereg.data.synth.body import CHEST_C, FACE_C, HEAD_C, L_HAND, L_TOE, NUM_POINTS, R_HAND, R_TOE, Subject

SHIFT = 4
_ONE = 1 << SHIFT
CAPSULE, DISC, QUAD = 0, 1, 2


@dataclass
class Parts:
    """Drawable primitives in crop pixels, one row per part.

    ``pts`` holds a capsule's ends in rows 0-1, a disc's centre in every row, a quad's corners;
    ``joints`` marks the labelled joints each part belongs to; ``owner`` is the person (-1: none).
    """

    depth: np.ndarray  # (P,)
    kind: np.ndarray  # (P,) int
    pts: np.ndarray  # (P,4,2)
    radius: np.ndarray  # (P,)
    colour: np.ndarray  # (P,3) int
    joints: np.ndarray  # (P,num_joints) bool
    owner: np.ndarray  # (P,) int

    def __len__(self) -> int:
        return len(self.depth)

    @staticmethod
    def concat(parts: list[Parts]) -> Parts:
        """All parts of a list of Parts, in order."""
        if len(parts) == 1:
            return parts[0]
        return Parts(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("depth", "kind", "pts", "radius", "colour", "joints", "owner")

# The person's parts: (kind, points, radius key, radius factor, palette entry, labelled joints).
# A capsule joins two points, a disc sits on one, the torso quad spans shoulders and hips.
_SKIN, _HAIR, _SHIRT, _FRONT, _PANTS, _SHOES = range(6)  # body.PALETTE_KEYS order
_LEGS, _FORE = -1, -2  # shin: skin when in shorts else pants; forearm: shirt with long sleeves else skin
_PERSON: list[tuple[int, tuple[int, ...], str, float, int, tuple[int, ...]]] = []
for _hip, _knee, _ankle, _toe in ((B.R_HIP, B.R_KNEE, B.R_ANKLE, R_TOE), (B.L_HIP, B.L_KNEE, B.L_ANKLE, L_TOE)):
    _PERSON += [(CAPSULE, (_hip, _knee), "thigh", 1.0, _PANTS, (_hip, _knee)),
                (CAPSULE, (_knee, _ankle), "shin", 1.0, _LEGS, (_knee, _ankle)),
                (CAPSULE, (_ankle, _toe), "foot", 1.0, _SHOES, (_ankle,))]
for _sho, _elb, _wri, _hand in ((B.R_SHO, B.R_ELB, B.R_WRI, R_HAND), (B.L_SHO, B.L_ELB, B.L_WRI, L_HAND)):
    _PERSON += [(CAPSULE, (_sho, _elb), "upper_arm", 1.0, _SHIRT, (_sho, _elb)),
                (CAPSULE, (_elb, _wri), "forearm", 1.0, _FORE, (_elb, _wri)),
                (CAPSULE, (_wri, _hand), "hand", 1.0, _SKIN, (_wri,))]
_PERSON += [
    (QUAD, (B.L_SHO, B.R_SHO, B.R_HIP, B.L_HIP), "torso", 0.45, _SHIRT,
     (B.L_SHO, B.R_SHO, B.R_HIP, B.L_HIP, B.PELVIS, B.SPINE, B.THORAX, B.NECK)),
    (DISC, (CHEST_C,), "torso", 0.4, _FRONT, (B.SPINE, B.THORAX)),
    (CAPSULE, (B.NECK, HEAD_C), "neck", 1.0, _SKIN, (B.NECK, B.NOSE)),
    (DISC, (HEAD_C,), "head", 1.0, _HAIR, (B.NOSE, B.HEAD, B.NECK)),
    (DISC, (FACE_C,), "head", 0.78, _SKIN, (B.NOSE, B.HEAD)),
]


def _person_tables() -> dict[str, Any]:
    """_PERSON as read-only arrays: point indices, mean-depth / mean-scale matrices, joint masks, colour rows."""
    n = len(_PERSON)
    pts = np.zeros((n, 4), dtype=np.int64)  # point indices of the part's pts rows
    depth_pts = np.zeros((n, 4), dtype=np.int64)  # the depth is the mean z of these
    size_pts = np.zeros((n, 2), dtype=np.int64)  # the radius scales with the mean px/mm of these
    joints = np.zeros((n, B.NUM_JOINTS), dtype=bool)
    for k, (kind, p, _, _, _, js) in enumerate(_PERSON):
        if kind == CAPSULE:
            pts[k], depth_pts[k], size_pts[k] = (p[0], p[1], p[1], p[1]), (p[0], p[1], p[0], p[1]), p
        elif kind == DISC:
            pts[k], depth_pts[k], size_pts[k] = p * 4, p * 4, p * 2
        else:
            pts[k], depth_pts[k], size_pts[k] = p, p, (B.SPINE, B.SPINE)
        joints[k, list(js)] = True
    colours = np.array([c for *_, c, _ in _PERSON])
    # palette rows per (shorts, long_sleeves)
    colour_rows = {("colours", shorts, sleeves): np.where(colours == _LEGS, _SKIN if shorts else _PANTS,
                                               np.where(colours == _FORE, _SHIRT if sleeves else _SKIN, colours))
                   for shorts in (False, True) for sleeves in (False, True)}
    # the means over depth_pts / size_pts as (parts, points) matrices: one product per person
    depth_mean, size_mean = np.zeros((n, NUM_POINTS)), np.zeros((n, NUM_POINTS))
    for k in range(n):
        np.add.at(depth_mean[k], depth_pts[k], 1 / depth_pts.shape[1])
        np.add.at(size_mean[k], size_pts[k], 1 / size_pts.shape[1])
    tables = {"kind": np.array([p[0] for p in _PERSON]), "pts": pts, "depth_mean": depth_mean,
              "size_mean": size_mean, "joints": joints, "factor": np.array([p[3] for p in _PERSON]),
              "radius_index": np.array([B.RADII_KEYS.index(p[2]) for p in _PERSON]), **colour_rows}
    for v in tables.values():  # person_parts hands some of them out without copying
        v.setflags(write=False)
    return tables


_T = _person_tables()


def person_parts(uv: np.ndarray, z: np.ndarray, focal: float, subject: Subject, owner: int = 0) -> Parts:
    """Drawable parts of one person from crop-pixel points uv (25,2), their depths z and the crop focal."""
    px = focal / z  # mm -> px at each point
    rad_mm = subject.radii_mm[_T["radius_index"]] * _T["factor"]
    a = subject.appearance
    colour = subject.palette[_T["colours", a.shorts, a.long_sleeves]]
    n = len(_PERSON)
    return Parts(depth=_T["depth_mean"] @ z, kind=_T["kind"], pts=uv[_T["pts"]],
                 radius=rad_mm * (_T["size_mean"] @ px), colour=colour, joints=_T["joints"], owner=np.full(n, owner))


def _fx(p: np.ndarray) -> np.ndarray:
    """Continuous crop pixels -> cv2 fixed-point pixel-centre coordinates."""
    return np.rint((p - 0.5) * _ONE).astype(np.int32)


def _shade(colour: np.ndarray, k: float) -> np.ndarray:
    return np.minimum(255, (colour * k).astype(np.int64))


def draw_parts(img: np.ndarray, parts: Parts) -> np.ndarray:
    """Draw back to front (largest depth first) with simple shading (dark rim, base colour, highlight).

    Returns the drawing order (indices into ``parts``). Only the silhouettes are anti-aliased (they
    carry the sub-pixel positions); the inner shading is not.
    """
    order = np.argsort(-parts.depth, kind="stable")
    r = parts.radius[order]
    ends = _fx(parts.pts[order, :2])  # (P,2,2): capsule ends, disc centre (twice)
    off = (-0.3 * _ONE * r).astype(np.int64)  # capsule highlight offset (truncated like int())
    rad = (r * _ONE).astype(np.int64)  # disc radius in fixed point
    widths = np.maximum(1, np.rint(r[:, None] * _WIDTHS)).astype(np.int64)  # rim, base, highlight
    col = parts.colour[order].astype(np.int64)
    dark, light = _shade(col, 0.62), _shade(col, 1.22)
    rows = zip(parts.kind[order].tolist(), r.tolist(), ends.tolist(), off.tolist(), rad.tolist(), widths.tolist(),
               col.tolist(), dark.tolist(), light.tolist(), order.tolist(), strict=True)
    line, circle, aa, l8 = cv2.line, cv2.circle, cv2.LINE_AA, cv2.LINE_8
    for kind, radius, (a, b), o, rd, (w1, w2, w3), c, dk, lt, k in rows:
        if kind == CAPSULE:
            line(img, a, b, dk, w1, aa, SHIFT)
            line(img, a, b, c, w2, l8, SHIFT)
            if radius > 2.5:
                line(img, (a[0] + o, a[1] + o), (b[0] + o, b[1] + o), lt, w3, l8, SHIFT)
        elif kind == DISC:
            circle(img, a, rd, dk, -1, aa, SHIFT)
            circle(img, a, int(rd * 0.86), c, -1, l8, SHIFT)
            if radius > 3:
                circle(img, (a[0] - rd // 4, a[1] - rd // 4), int(rd * 0.35), lt, -1, l8, SHIFT)
        else:
            _draw_quad(img, parts.pts[k].tolist(), radius, c, dk)
    return order


_WIDTHS = np.array([2.0, 1.4, 0.5])


def _draw_quad(img: np.ndarray, pts: list[list[float]], radius: float, colour: list[int], dark: list[int]) -> None:
    """The torso: a dark rim, the base colour slightly inside it, and a band from the top to the bottom edge."""
    cx = (pts[0][0] + pts[1][0] + pts[2][0] + pts[3][0]) / 4
    cy = (pts[0][1] + pts[1][1] + pts[2][1] + pts[3][1]) / 4

    def scaled(k: float) -> np.ndarray:  # the corners pulled towards / pushed from the centre, fixed point
        return np.array([[round((cx + (x - cx) * k - 0.5) * _ONE), round((cy + (y - cy) * k - 0.5) * _ONE)]
                         for x, y in pts], dtype=np.int32)

    cv2.fillConvexPoly(img, scaled(1.12), dark, cv2.LINE_AA, SHIFT)
    cv2.fillConvexPoly(img, scaled(0.98), colour, cv2.LINE_AA, SHIFT)
    top = (round(((pts[0][0] + pts[1][0]) / 2 - 0.5) * _ONE), round(((pts[0][1] + pts[1][1]) / 2 - 0.5) * _ONE))
    bottom = (round(((pts[2][0] + pts[3][0]) / 2 - 0.5) * _ONE), round(((pts[2][1] + pts[3][1]) / 2 - 0.5) * _ONE))
    cv2.line(img, top, bottom, colour, max(1, round(radius)), cv2.LINE_AA, SHIFT)


def occluded_joints(uv: np.ndarray, z: np.ndarray, parts: Parts, num_joints: int = 18,
                    owner: int = 0, margin_mm: float = 30.0) -> np.ndarray:
    """(num_joints,) bool: the joint's pixel is covered by a part closer to the camera that is not its own."""
    # points as complex numbers x + iy: half the array operations of separate x and y
    p = _complex(uv[:num_joints])  # (J,)
    c = _complex(parts.pts)  # (P,4)
    a, e = c[:, :1], c[:, 1:2] - c[:, :1]  # capsule axis from a; a disc's rows coincide: e = 0
    q = p - a  # (P,J)
    t = (q * e.conj()).real / np.maximum((e * e.conj()).real, 1e-9)  # projection onto the axis
    d = q - np.minimum(np.maximum(t, 0.0), 1.0) * e  # to the nearest axis point
    r = parts.radius
    cover = (d * d.conj()).real < np.where(r > 0, r * r, -1.0)[:, None]
    quads = np.nonzero(parts.kind == QUAD)[0]
    if len(quads):
        cover[quads] = _in_quads(p, c[quads])
    closer = parts.depth[:, None] < z[:num_joints] - margin_mm
    own = parts.joints[:, :num_joints] & (parts.owner == owner)[:, None]
    return (cover & closer & ~own).any(axis=0)


def _complex(xy: np.ndarray) -> np.ndarray:
    """(..., 2) float points as (...) complex x + iy (a view when possible)."""
    return np.ascontiguousarray(xy, dtype=np.float64).view(np.complex128)[..., 0]


def _in_quads(p: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """(Q,N): points p (N,) complex inside each convex quadrilateral of quads (Q,4) complex (either winding)."""
    a = quads[:, :, None]  # (Q,4,1): edge k runs from corner k to corner k+1
    s = ((quads[:, _NEXT_CORNER, None] - a).conj() * (p - a)).imag  # (Q,4,N): which side of each edge
    return (s >= 0).all(axis=1) | (s <= 0).all(axis=1)


_NEXT_CORNER = np.array([1, 2, 3, 0])


def background(rng: np.random.Generator, w: int, h: int, clutter: float, texture_prob: float) -> np.ndarray:
    """A smooth colour field with optional texture, random shapes and line segments (uint8 HxWx3)."""
    g = int(rng.integers(2, 5))
    img = cv2.resize(_random_pixels(rng, g), (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < texture_prob:
        n = int(rng.integers(4, 24))
        tex = cv2.resize(_random_pixels(rng, n), (w, h),
                         interpolation=cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR)
        alpha = float(rng.uniform(0.2, 0.6))
        img = cv2.addWeighted(img, 1 - alpha, tex, alpha, 0.0)
    n_shapes = int(rng.poisson(clutter * 8))
    n_lines = int(rng.poisson(clutter * 6))
    s = max(w, h)
    if n_shapes:
        _shapes(img, rng.random((n_shapes, 11)), s)
    if n_lines:
        u = rng.random((n_lines, 8))
        col = (u[:, :3] * 256).astype(np.int64)
        lo, hi = -s // 4, s + s // 4  # end points in [lo, hi)
        p = lo + np.floor(u[:, 3:7] * (hi - lo)).astype(np.int64)
        thick = 1 + (u[:, 7] * 3).astype(np.int64)
        for c, (x0, y0, x1, y1), t in zip(col.tolist(), p.tolist(), thick.tolist(), strict=True):
            cv2.line(img, (x0, y0), (x1, y1), c, t, cv2.LINE_AA)
    return img


def _random_pixels(rng: np.random.Generator, n: int) -> np.ndarray:
    """An n x n x 3 uint8 image of independent uniform values."""
    return (rng.random((n, n, 3)) * 256).astype(np.uint8)


def _shapes(img: np.ndarray, u: np.ndarray, s: int) -> None:
    """Draw rectangles, circles and ellipses, one per row of uniforms u (n,11), in a canvas of side s."""
    lo = s // 20
    col = (u[:, :3] * 256).astype(np.int64)
    xy = np.floor(u[:, 3:5] * s).astype(np.int64)
    size = lo + np.floor(u[:, 5] * (s // 3 - lo)).astype(np.int64)
    fill = np.where(u[:, 6] < 0.7, -1, 1 + (u[:, 7] * 3).astype(np.int64))
    kind = (u[:, 8] * 3).astype(np.int64)
    rect_h = (size * (0.3 + 1.7 * u[:, 9])).astype(np.int64)  # rectangle height: size x U(0.3, 2)
    minor = (size * (0.1 + 0.4 * u[:, 9])).astype(np.int64)  # ellipse minor axis: size x U(0.1, 0.5)
    angle = 180.0 * u[:, 10]
    rows = zip(col.tolist(), xy.tolist(), size.tolist(), fill.tolist(), kind.tolist(), rect_h.tolist(),
               minor.tolist(), angle.tolist(), strict=True)
    for c, (x, y), sz, f, k, rh, mi, ang in rows:
        if k == 0:
            cv2.rectangle(img, (x, y), (x + sz, y + rh), c, f)
        elif k == 1:
            cv2.circle(img, (x, y), sz // 2, c, f, cv2.LINE_AA)
        else:
            cv2.ellipse(img, (x, y), (sz // 2, mi), ang, 0, 360, c, f, cv2.LINE_AA)


def distractor_parts(rng: np.random.Generator, w: int, h: int, limb_px: float, colours: list[tuple[int, int, int]],
                     front_prob: float, person_depth: float, num_joints: int = B.NUM_JOINTS) -> Parts:
    """1-3 loose limb-like capsules (a person's parts seen through clutter), some in front of the person."""
    n = int(rng.integers(1, 4))
    u = rng.random((n, 7))
    c = u[:, :2] * [w, h]
    ang = 2 * np.pi * u[:, 2]
    length = limb_px * (3 + 5 * u[:, 3])
    d = np.stack([np.cos(ang), np.sin(ang)], axis=1) * (length / 2)[:, None]
    depth = np.where(u[:, 4] < front_prob, person_depth - 500.0, person_depth + 1500.0)
    col = np.asarray(colours)[np.minimum((u[:, 5] * len(colours)).astype(np.int64), len(colours) - 1)]
    pts = np.stack([c - d, c + d, c + d, c + d], axis=1)
    return Parts(depth=depth, kind=np.full(n, CAPSULE), pts=pts, radius=limb_px * (0.7 + 0.8 * u[:, 6]),
                 colour=col, joints=np.zeros((n, num_joints), dtype=bool), owner=np.full(n, -1))


def occluder(rng: np.random.Generator, img: np.ndarray, at: np.ndarray, size: float) -> tuple[np.ndarray, float]:
    """Draw a solid object centred near ``at`` (crop px); returns its centre and radius for coverage tests."""
    u = rng.random(6)
    col = (u[:3] * 256).astype(np.int64).tolist()
    centre = at + (u[3:5] - 0.5) * (0.5 * size)
    half = size / 2
    c = _fx(centre)
    if u[5] < 0.5:
        cv2.circle(img, (int(c[0]), int(c[1])), int(half * _ONE), col, -1, cv2.LINE_AA, SHIFT)
    else:
        box = np.array([[-half, -half], [half, -half], [half, half], [-half, half]]) + centre
        cv2.fillConvexPoly(img, _fx(box), col, cv2.LINE_AA, SHIFT)
    # coverage is tested with the inscribed disc (both shapes contain it)
    return centre, half
