"""SynthPose rasterizer: cluttered backgrounds and depth-ordered shaded body parts with cv2 primitives.

Everything is drawn directly in crop pixels (the crop of a pinhole image is a pinhole image, see
``posereg.geometry``), with cv2's sub-pixel ``shift`` so part positions are exact to 1/16 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posereg.data.synth import body as B
from posereg.data.synth.body import Subject

SHIFT = 4
_ONE = 1 << SHIFT
# Extra render points appended after the 18 joints.
R_TOE, L_TOE, R_HAND, L_HAND, HEAD_C, FACE_C, CHEST_C = range(18, 25)
NUM_RENDER_POINTS = 25
CAPSULE, DISC, QUAD = 0, 1, 2


@dataclass
class Part:
    """One drawable primitive in crop pixels; ``joints`` are the labelled joints it belongs to."""

    depth: float
    kind: int
    pts: np.ndarray
    radius: float
    colour: tuple[int, int, int]
    joints: tuple[int, ...] = ()
    owner: int = 0


def render_points(posed: B.Posed, subject: Subject) -> np.ndarray:
    """(25,3) body-frame points: 18 joints, toes, hand tips, head centre, face centre, chest front."""
    J = posed.joints
    r = subject.radii
    head_c = (J[B.NOSE] + J[B.HEAD]) / 2 - 0.3 * r["head"] * posed.head_forward
    face_c = head_c + 0.55 * r["head"] * posed.head_forward
    chest_c = 0.65 * J[B.THORAX] + 0.35 * J[B.PELVIS] + 0.55 * r["torso"] * posed.chest_forward
    return np.vstack([J, posed.toes, posed.hands, head_c, face_c, chest_c])


def _shade(c: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return (min(255, int(c[0] * k)), min(255, int(c[1] * k)), min(255, int(c[2] * k)))


def person_parts(uv: np.ndarray, z: np.ndarray, focal: float, subject: Subject, owner: int = 0) -> list[Part]:
    """Drawable parts of one person from crop-pixel points uv (25,2), their depths z and the crop focal."""
    a = subject.appearance
    r = subject.radii
    px = focal / z  # mm -> px at each point
    parts: list[Part] = []

    def cap(i: int, j: int, rad_mm: float, col: tuple[int, int, int], joints: tuple[int, ...]) -> None:
        rad = rad_mm * 0.5 * (px[i] + px[j])
        parts.append(Part(0.5 * (z[i] + z[j]), CAPSULE, uv[[i, j]], rad, col, joints, owner))

    legs = a.skin if a.shorts else a.pants
    for hip, knee, ankle, toe in ((B.R_HIP, B.R_KNEE, B.R_ANKLE, R_TOE), (B.L_HIP, B.L_KNEE, B.L_ANKLE, L_TOE)):
        cap(hip, knee, r["thigh"], a.pants, (hip, knee))
        cap(knee, ankle, r["shin"], legs, (knee, ankle))
        cap(ankle, toe, r["foot"], a.shoes, (ankle,))
    fore = a.shirt if a.long_sleeves else a.skin
    for sho, elb, wri, hand in ((B.R_SHO, B.R_ELB, B.R_WRI, R_HAND), (B.L_SHO, B.L_ELB, B.L_WRI, L_HAND)):
        cap(sho, elb, r["upper_arm"], a.shirt, (sho, elb))
        cap(elb, wri, r["forearm"], fore, (elb, wri))
        cap(wri, hand, r["hand"], a.skin, (wri,))
    quad = uv[[B.L_SHO, B.R_SHO, B.R_HIP, B.L_HIP]]
    torso_joints = (B.L_SHO, B.R_SHO, B.R_HIP, B.L_HIP, B.PELVIS, B.SPINE, B.THORAX, B.NECK)
    zt = float(z[[B.L_SHO, B.R_SHO, B.R_HIP, B.L_HIP]].mean())
    parts.append(Part(zt, QUAD, quad, r["torso"] * 0.45 * float(px[B.SPINE]), a.shirt, torso_joints, owner))
    parts.append(Part(float(z[CHEST_C]), DISC, uv[[CHEST_C]], 0.4 * r["torso"] * float(px[CHEST_C]),
                      a.shirt_front, (B.SPINE, B.THORAX), owner))
    cap(B.NECK, HEAD_C, r["neck"], a.skin, (B.NECK, B.NOSE))
    parts.append(Part(float(z[HEAD_C]), DISC, uv[[HEAD_C]], r["head"] * float(px[HEAD_C]), a.hair,
                      (B.NOSE, B.HEAD, B.NECK), owner))
    parts.append(Part(float(z[FACE_C]), DISC, uv[[FACE_C]], 0.78 * r["head"] * float(px[FACE_C]), a.skin,
                      (B.NOSE, B.HEAD), owner))
    return parts


def _fx(p: np.ndarray) -> np.ndarray:
    """Continuous crop pixels -> cv2 fixed-point pixel-centre coordinates."""
    return np.round((p - 0.5) * _ONE).astype(np.int32)


def draw_part(img: np.ndarray, p: Part) -> None:
    """Rasterize one part with simple shading (dark rim, base colour, highlight)."""
    col, dark, light = p.colour, _shade(p.colour, 0.62), _shade(p.colour, 1.22)
    if p.kind == CAPSULE:
        a, b = _fx(p.pts)
        a, b = (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))
        t = max(1, int(round(2 * p.radius)))
        cv2.line(img, a, b, dark, t, cv2.LINE_AA, SHIFT)
        # only the silhouette is anti-aliased (it carries the sub-pixel position); inner shading is not
        cv2.line(img, a, b, col, max(1, int(round(1.4 * p.radius))), cv2.LINE_8, SHIFT)
        if p.radius > 2.5:
            off = int(-0.3 * p.radius * _ONE)
            cv2.line(img, (a[0] + off, a[1] + off), (b[0] + off, b[1] + off), light,
                     max(1, int(round(0.5 * p.radius))), cv2.LINE_8, SHIFT)
    elif p.kind == DISC:
        c = _fx(p.pts[0])
        cen = (int(c[0]), int(c[1]))
        rad = int(p.radius * _ONE)
        cv2.circle(img, cen, rad, dark, -1, cv2.LINE_AA, SHIFT)
        cv2.circle(img, cen, int(rad * 0.86), col, -1, cv2.LINE_8, SHIFT)
        if p.radius > 3:
            cv2.circle(img, (cen[0] - rad // 4, cen[1] - rad // 4), int(rad * 0.35), light, -1, cv2.LINE_8, SHIFT)
    else:
        centre = p.pts.mean(axis=0)
        outer = centre + (p.pts - centre) * 1.12
        cv2.fillConvexPoly(img, _fx(outer), dark, cv2.LINE_AA, SHIFT)
        cv2.fillConvexPoly(img, _fx(centre + (p.pts - centre) * 0.98), col, cv2.LINE_AA, SHIFT)
        top = (p.pts[0] + p.pts[1]) / 2
        bottom = (p.pts[2] + p.pts[3]) / 2
        a, b = _fx(np.stack([top, bottom]))
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), col, max(1, int(round(p.radius))),
                 cv2.LINE_AA, SHIFT)


def draw_parts(img: np.ndarray, parts: list[Part]) -> list[Part]:
    """Draw back to front (largest depth first); returns the parts in drawing order."""
    order = sorted(parts, key=lambda p: -p.depth)
    for p in order:
        draw_part(img, p)
    return order


def occluded_joints(uv: np.ndarray, z: np.ndarray, parts: list[Part], num_joints: int = 18,
                    owner: int = 0, margin_mm: float = 30.0) -> np.ndarray:
    """(num_joints,) bool: the joint's pixel is covered by a part closer to the camera that is not its own."""
    pts = uv[:num_joints]
    n = len(parts)
    a = np.empty((n, 2))
    b = np.empty((n, 2))
    rad = np.empty(n)
    depth = np.empty(n)
    own = np.zeros((n, num_joints), dtype=bool)
    quads = []
    for i, p in enumerate(parts):
        a[i] = p.pts[0]
        b[i] = p.pts[0] if p.kind == DISC else p.pts[1]
        rad[i], depth[i] = p.radius, p.depth
        if p.owner == owner:
            own[i, list(p.joints)] = True
        if p.kind == QUAD:
            quads.append(i)
            rad[i] = -1.0  # tested as a polygon below
    ab = b - a  # (P,2)
    ap = pts[None, :, :] - a[:, None, :]  # (P,J,2)
    t = np.clip((ap * ab[:, None, :]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9)[:, None], 0.0, 1.0)
    d = np.linalg.norm(ap - t[..., None] * ab[:, None, :], axis=-1)
    cover = d < rad[:, None]
    for i in quads:
        cover[i] = _in_quad(pts, parts[i].pts)
    closer = depth[:, None] < z[None, :num_joints] - margin_mm
    return (cover & closer & ~own).any(axis=0)


def _in_quad(pts: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Points inside a convex quadrilateral (either winding)."""
    signs = []
    for k in range(4):
        a, b = quad[k], quad[(k + 1) % 4]
        signs.append((b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]))
    s = np.stack(signs)
    return (s >= 0).all(axis=0) | (s <= 0).all(axis=0)


def _rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    return int(rng.integers(0, 256)), int(rng.integers(0, 256)), int(rng.integers(0, 256))


def background(rng: np.random.Generator, w: int, h: int, clutter: float, texture_prob: float) -> np.ndarray:
    """A smooth colour field with optional texture, random shapes and line segments (uint8 HxWx3)."""
    g = int(rng.integers(2, 5))
    img = cv2.resize(rng.integers(0, 256, size=(g, g, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < texture_prob:
        n = int(rng.integers(4, 24))
        tex = cv2.resize(rng.integers(0, 256, size=(n, n, 3), dtype=np.uint8), (w, h),
                         interpolation=cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR)
        alpha = float(rng.uniform(0.2, 0.6))
        img = cv2.addWeighted(img, 1 - alpha, tex, alpha, 0.0)
    n_shapes = int(rng.poisson(clutter * 8))
    n_lines = int(rng.poisson(clutter * 6))
    s = max(w, h)
    for _ in range(n_shapes):
        col = _rgb(rng)
        x, y = rng.integers(0, s), rng.integers(0, s)
        size = int(rng.integers(s // 20, s // 3))
        fill = -1 if rng.random() < 0.7 else int(rng.integers(1, 4))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), col, fill)
        elif kind == 1:
            cv2.circle(img, (x, y), size // 2, col, fill, cv2.LINE_AA)
        else:
            cv2.ellipse(img, (x, y), (size // 2, int(size * rng.uniform(0.1, 0.5))), float(rng.uniform(0, 180)),
                        0, 360, col, fill, cv2.LINE_AA)
    for _ in range(n_lines):
        col = _rgb(rng)
        p = [rng.integers(-s // 4, s + s // 4) for _ in range(4)]
        cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def distractor_parts(rng: np.random.Generator, w: int, h: int, limb_px: float, colours: list[tuple[int, int, int]],
                     front_prob: float, person_depth: float) -> list[Part]:
    """1-3 loose limb-like capsules (a person's parts seen through clutter), some in front of the person."""
    parts = []
    for _ in range(int(rng.integers(1, 4))):
        c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        ang = rng.uniform(0, 2 * np.pi)
        length = limb_px * rng.uniform(3, 8)
        d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
        depth = person_depth - 500.0 if rng.random() < front_prob else person_depth + 1500.0
        col = colours[int(rng.integers(len(colours)))]
        parts.append(Part(depth, CAPSULE, np.stack([c - d, c + d]), limb_px * rng.uniform(0.7, 1.5), col, (), -1))
    return parts


def occluder(rng: np.random.Generator, img: np.ndarray, at: np.ndarray, size: float) -> tuple[np.ndarray, float]:
    """Draw a solid object centred near ``at`` (crop px); returns its centre and radius for coverage tests."""
    col = _rgb(rng)
    centre = at + np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)]) * size
    half = size / 2
    c = _fx(centre)
    if rng.random() < 0.5:
        cv2.circle(img, (int(c[0]), int(c[1])), int(half * _ONE), col, -1, cv2.LINE_AA, SHIFT)
    else:
        box = np.array([[-half, -half], [half, -half], [half, half], [-half, half]]) + centre
        cv2.fillConvexPoly(img, _fx(box), col, cv2.LINE_AA, SHIFT)
    # coverage is tested with the inscribed disc (both shapes contain it)
    return centre, half
