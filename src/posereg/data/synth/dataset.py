"""SynthPose: procedural people in clutter with exact 2D/3D labels; sample i is a pure function of (seed, split, i)."""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posereg.data.synth import body as B
from posereg.data.synth import render as R
from posereg.data.synth.crop import SimilarityCrop
from posereg.data.synth.poses import DEFAULT_FAMILY_WEIGHTS, sample_angles
from posereg.data.synth.rng import BlockRng, IndexedStreams
from posereg.data.transforms import (
    AugmentConfig,
    Photometric,
    apply_crop_params,
    apply_values,
    identity_values,
    map_labels,
    sample_crop_params,
    to_tensor_image,
)
from posereg.errors import ConfigError, require_int
from posereg.skeletons import check_mappable, get_joint_set, mapping_indices

SPLITS = ("train", "val", "test")
_RENDER_SET = "h36m18"
_BODY_TO_CAMERA_SIGNS = np.array([1.0, -1.0, -1.0])  # rot_x(elevation) @ diag(1, -1, -1), column-wise


@dataclass
class SynthConfig:
    """Every SynthPose knob; the variants below are presets of these values."""

    labels: str = "mpii16"  # joint set the variant annotates (its "native" set)
    dims: int = 2
    length: dict[str, int] = field(default_factory=lambda: {"train": 8192, "val": 512, "test": 512})
    subjects: dict[str, list[int]] | None = None  # per-split subject ids; None = a new subject per sample
    family_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAMILY_WEIGHTS))
    height_scale: tuple[float, float] = (0.88, 1.12)
    bone_jitter: float = 0.06
    distance: tuple[float, float] = (3000.0, 7000.0)  # camera to root, mm
    focal: float = 1150.0  # H36M-like, for a 1000x1000 image
    focal_jitter: float = 0.05
    image_size: tuple[int, int] = (1000, 1000)
    elevation: tuple[float, float] = (-5.0, 25.0)  # camera pitch, degrees (positive: seen from above)
    margin: tuple[float, float] = (1.15, 1.35)  # box side / longest side of the projected person
    clutter: float = 1.0  # mean number of background shapes / 8 and lines / 6
    texture_prob: float = 0.5
    truncation_rate: float = 0.1  # fraction of samples whose box cuts off at least one joint
    distractor_rate: float = 0.15  # loose limbs in the scene
    distractor_front_prob: float = 0.3
    second_person_rate: float = 0.1
    occluder_rate: float = 0.1  # an object drawn over a random joint
    occlusion_rule: str = "keep"  # keep: occluded joints stay labelled (like MPII/COCO); drop: weight 0
    noise: float = 4.0  # max sigma of sensor noise, 0..255 units
    blur_prob: float = 0.2
    gain: tuple[float, float] = (0.75, 1.25)


VARIANTS: dict[str, dict[str, Any]] = {
    "synth2d": {"labels": "mpii16", "dims": 2},
    "synth3d": {"labels": "h36m17", "dims": 3, "subjects": {"train": [1, 5, 6, 7, 8], "val": [9], "test": [11]},
                "clutter": 0.6, "truncation_rate": 0.0, "distractor_rate": 0.05, "second_person_rate": 0.0,
                "occluder_rate": 0.0, "noise": 3.0},
}


def synth_config(variant: str, **overrides: Any) -> SynthConfig:
    """SynthConfig for a variant with overrides; ConfigError names unknown keys and bad values."""
    if variant not in VARIANTS:
        raise ConfigError(f"data.sources.*.variant={variant!r}: choose one of {sorted(VARIANTS)}")
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"SynthPose: unknown settings {unknown}; valid: {sorted(names)}")
    values = {**VARIANTS[variant], **{k: v for k, v in overrides.items() if v is not None}}
    for k in ("height_scale", "distance", "image_size", "elevation", "margin", "gain"):
        if k in values:
            values[k] = tuple(values[k])
    for k in ("length", "family_weights"):
        if k in values:
            values[k] = dict(values[k])
    if values.get("subjects") is not None:
        values["subjects"] = {k: [int(i) for i in v] for k, v in dict(values["subjects"]).items()}
    cfg = SynthConfig(**values)
    for k in ("truncation_rate", "distractor_rate", "second_person_rate", "occluder_rate", "texture_prob",
              "blur_prob", "distractor_front_prob"):
        if not 0.0 <= getattr(cfg, k) <= 1.0:
            raise ConfigError(f"SynthPose.{k}={getattr(cfg, k)} must be in [0, 1]")
    if cfg.occlusion_rule not in ("keep", "drop"):
        raise ConfigError(f"SynthPose.occlusion_rule={cfg.occlusion_rule!r}: use 'keep' or 'drop'")
    if cfg.dims not in (2, 3):
        raise ConfigError(f"SynthPose.dims={cfg.dims}: use 2 or 3")
    for split, n in cfg.length.items():
        require_int(n, f"data.sources.*.length.{split}", 0)
    get_joint_set(cfg.labels)
    return cfg


def _project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """geometry.project for (N,3) points and one camera, without its batching logic."""
    return points_cam[:, :2] * K[:2] / points_cam[:, 2:3] + K[2:]


def _split_key(name: str) -> int:
    return zlib.crc32(name.encode())


class SynthPose(Dataset):
    """Procedural human pose dataset (see the module docstring); contract of DESIGN section 2."""

    name = "synth"
    procedural = True  # any index >= 0 is a valid, distinct sample (the sampler may go past len)

    def __init__(self, split: str = "train", joint_set: str | None = None, input_size: int = 128,
                 augment: AugmentConfig | dict | None = None, seed: int = 0, variant: str = "synth2d",
                 stream: str | None = None, **knobs: Any) -> None:
        if split not in SPLITS:
            raise ConfigError(f"SynthPose split={split!r}: use one of {SPLITS}")
        self.cfg = synth_config(variant, **knobs)
        self.variant, self.split = variant, split
        self.native_joint_set = self.cfg.labels
        self.joint_set = joint_set or self.cfg.labels
        check_mappable(self.cfg.labels, self.joint_set)
        self.has_2d, self.has_3d = True, self.cfg.dims == 3
        self.input_size = int(input_size)
        self.augment = AugmentConfig.from_cfg(augment)
        self.photometric = Photometric(self.augment) if self.augment is not None else None
        self.seed = int(seed)
        # the split seed: global seed x (stream, split) through SeedSequence, see __getitem__
        self.split_seed = np.random.SeedSequence(entropy=self.seed,
                                                 spawn_key=(_split_key(stream or variant), _split_key(split)))
        self._streams = IndexedStreams(self.split_seed)
        self.length = int(self.cfg.length.get(split, 0))
        self.subjects = None if self.cfg.subjects is None else list(self.cfg.subjects.get(split, []))
        if self.subjects is not None and not self.subjects:
            raise ConfigError(f"SynthPose: no subjects for split {split!r} in subjects={self.cfg.subjects}")
        self.body_cfg = B.BodyConfig(height_scale=self.cfg.height_scale, bone_jitter=self.cfg.bone_jitter)
        self._to_labels = np.asarray(mapping_indices(_RENDER_SET, self.cfg.labels))
        self._flip_to_labels = np.asarray(get_joint_set(_RENDER_SET).flip_index)[self._to_labels]
        self._noise_bank = np.random.default_rng(self.seed + 7919).normal(
            size=(3, 2 * self.input_size, 2 * self.input_size)).astype(np.float32)

    @classmethod
    def source_info(cls, variant: str = "synth2d", **knobs: Any) -> dict[str, Any]:
        """has_2d / has_3d / native joint set without building the dataset (used by the data module)."""
        allowed = {f.name for f in dataclasses.fields(SynthConfig)}
        cfg = synth_config(variant, **{k: v for k, v in knobs.items() if k in allowed})
        return {"has_2d": True, "has_3d": cfg.dims == 3, "joint_set": cfg.labels}

    def __len__(self) -> int:
        return self.length

    @lru_cache(maxsize=64)  # noqa: B019 - a handful of subjects per instance, rebuilt identically anywhere
    def subject(self, ident: int) -> B.Subject:
        """The fixed proportions and appearance of subject ``ident`` (depends on the seed only)."""
        ss = np.random.SeedSequence(entropy=self.seed, spawn_key=(_split_key("subject"), ident))
        return B.sample_subject(BlockRng(np.random.default_rng(ss)), self.body_cfg, ident)

    def rng(self, index: int) -> BlockRng:
        """The generator of sample ``index``: a pure function of (split seed, index), valid until the next call."""
        return self._streams(index)

    def _camera(self, rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
        c = self.cfg
        f = c.focal * (1 + rng.uniform(-c.focal_jitter, c.focal_jitter))
        w, h = c.image_size
        K = np.array([f, f, w / 2 + rng.uniform(-8, 8), h / 2 + rng.uniform(-8, 8)])
        d = rng.uniform(*c.distance)
        target = (rng.uniform(0.38, 0.62) * w, rng.uniform(0.4, 0.6) * h)
        T = np.array([(target[0] - K[2]) * d / f, (target[1] - K[3]) * d / f, d])
        return K, float(rng.uniform(*c.elevation)), T

    @staticmethod
    def _to_camera(points_body: np.ndarray, elevation: float, T: np.ndarray) -> np.ndarray:
        # body (x left, y up, z forward) facing the camera -> camera (x right, y down, z away)
        R = B.rot_x(elevation) * _BODY_TO_CAMERA_SIGNS
        return points_body @ R.T + T

    def _person(self, rng: np.random.Generator, subject: B.Subject | None = None
                ) -> tuple[B.Subject, str, np.ndarray]:
        if subject is None:
            if self.subjects is not None:
                subject = self.subject(int(self.subjects[int(rng.integers(len(self.subjects)))]))
            else:
                subject = B.sample_subject(rng, self.body_cfg)
        family, angles = sample_angles(rng, self.cfg.family_weights)
        return subject, family, B.forward_kinematics(subject, angles).points

    def _box(self, rng: np.random.Generator, uv: np.ndarray, head_r_px: float) -> tuple[np.ndarray, float, bool]:
        x, y = uv[:R.HEAD_C, 0], uv[:R.HEAD_C, 1]  # joints, toes and hands, plus the head disc below
        hx, hy = float(uv[R.HEAD_C, 0]), float(uv[R.HEAD_C, 1])
        x0, x1 = min(float(x.min()), hx - head_r_px), max(float(x.max()), hx + head_r_px)
        y0, y1 = min(float(y.min()), hy - head_r_px), max(float(y.max()), hy + head_r_px)
        center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        size = max(x1 - x0, y1 - y0) * rng.uniform(*self.cfg.margin)
        truncated = bool(rng.random() < self.cfg.truncation_rate)
        if truncated:  # move the box along one axis until a random extremity lies outside it
            k = int(rng.choice([B.R_ANKLE, B.L_ANKLE, B.R_WRI, B.L_WRI, B.HEAD, B.R_KNEE, B.L_KNEE]))
            axis = int(rng.integers(2))
            sign = 1.0 if uv[k, axis] >= center[axis] else -1.0
            center[axis] = uv[k, axis] - sign * size / 2 * rng.uniform(1.03, 1.35)
        return center, size, truncated

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        rng = self.rng(index)
        c = self.cfg
        W = self.input_size
        subject, family, pts_body = self._person(rng)
        K_img, elev, T = self._camera(rng)
        pts_cam = self._to_camera(pts_body, elev, T)
        uv_img = _project(pts_cam, K_img)
        head_r_img = subject.radii["head"] * K_img[0] / pts_cam[R.HEAD_C, 2]
        center, size, truncated = self._box(rng, uv_img, head_r_img)
        params = sample_crop_params(self.augment, rng)
        center, size = apply_crop_params(center, size, params)
        crop = SimilarityCrop.make(center, size, W, params.rotation, params.flip)
        # unflipped order, all render points: the labels are flipped in _labels
        uv, p3, K = crop.points_2d(uv_img), crop.points_3d(pts_cam), crop.camera(K_img)
        img = R.background(rng, W, W, c.clutter, c.texture_prob)
        parts = [R.person_parts(uv, p3[:, 2], K[0], subject, owner=0)]
        limb_px = 45.0 * K[0] / T[2]
        if rng.random() < c.second_person_rate:
            parts.append(self._second_person(rng, K_img, crop, T))
        if rng.random() < c.distractor_rate:
            a = subject.appearance
            parts.append(R.distractor_parts(rng, W, W, limb_px, [a.skin, a.pants, a.shirt, (200, 170, 140)],
                                            c.distractor_front_prob, float(T[2])))
        scene = R.Parts.concat(parts)
        R.draw_parts(img, scene)
        occluded = R.occluded_joints(uv, p3[:, 2], scene)
        has_occluder = bool(rng.random() < c.occluder_rate)
        if has_occluder:
            j = uv[:B.NUM_JOINTS]
            inside = np.flatnonzero((j[:, 0] >= 0) & (j[:, 0] < W) & (j[:, 1] >= 0) & (j[:, 1] < W))
            target = int(inside[int(rng.integers(len(inside)))]) if len(inside) else B.PELVIS
            centre, radius = R.occluder(rng, img, uv[target], W * rng.uniform(0.15, 0.28))
            occluded |= np.linalg.norm(uv[:B.NUM_JOINTS] - centre, axis=1) < radius
        image = self._pixels(rng, img)
        return self._labels(index, image, uv, p3, K, crop, params.flip, occluded, subject, family, truncated,
                            head_r_img, uv_img, has_occluder)

    def _pixels(self, rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
        """Camera appearance (gain, blur), augmentation and sensor noise on the drawn image -> normalized CHW.

        The pointwise steps are chained on the 256 pixel values and fused into the normalization, so
        most samples cost one pass over the pixels; only blur, additive noise and dropout need their own.
        """
        c = self.cfg
        k = rng.uniform(*c.gain)
        gain = np.array([k * rng.uniform(0.93, 1.07) for _ in range(3)], dtype=np.float32)
        values = identity_values()
        values *= gain
        np.clip(np.rint(values, out=values), 0, 255, out=values)  # cv2.multiply's rounding and saturation
        if rng.random() < c.blur_prob:
            img = cv2.GaussianBlur(apply_values(img, values), (0, 0), float(rng.uniform(0.3, 1.1)))
            values = identity_values()
        if self.photometric is not None:
            draw = self.photometric.draw(rng, img.shape)
            values = draw.values(values)
            if draw.pixel_ops:
                img = self.photometric.apply_pixels(apply_values(img, values), draw)
                values = identity_values()
        W = self.input_size
        sigma = rng.uniform(0, c.noise)
        oy, ox = rng.integers(0, W), rng.integers(0, W)
        return to_tensor_image(img, self._noise_bank[:, oy:oy + W, ox:ox + W], values, sigma)

    def _second_person(self, rng: np.random.Generator, K_img: np.ndarray, crop: SimilarityCrop,
                       T: np.ndarray) -> R.Parts:
        subject, _, pts_body = self._person(rng, B.sample_subject(rng, self.body_cfg))
        T2 = T.copy()
        T2[2] = T[2] + rng.uniform(-1200, 1500)
        T2[0] = T[0] + rng.choice([-1, 1]) * rng.uniform(450, 900) * T2[2] / T[2]
        pts_cam = self._to_camera(pts_body, float(rng.uniform(*self.cfg.elevation)), T2)
        uv, p3 = crop.points_2d(_project(pts_cam, K_img)), crop.points_3d(pts_cam)
        return R.person_parts(uv, p3[:, 2], crop.scale * K_img[0], subject, owner=1)

    def _labels(self, index: int, image: np.ndarray, uv: np.ndarray, p3: np.ndarray, K: np.ndarray,
                crop: SimilarityCrop, flip: bool, occluded: np.ndarray, subject: B.Subject, family: str,
                truncated: bool, head_r_img: float, uv_img: np.ndarray, has_occluder: bool) -> dict[str, Any]:
        n = B.NUM_JOINTS
        # the render set's joints -> the variant's label set, left/right swapped when the crop is mirrored
        # (3D X is already negated by the crop)
        li = self._flip_to_labels if flip else self._to_labels
        j2, j3, occ = uv[li], p3[li], occluded[li]
        inside = ((j2 >= 0) & (j2 < self.input_size)).all(axis=1)
        if self.cfg.occlusion_rule == "drop":
            inside &= ~occ
        w = np.empty((len(li), 3))
        w[:, 0] = w[:, 1] = inside
        w[:, 2] = 1.0 if self.cfg.dims == 3 else 0.0
        j2, w, j3 = map_labels(j2, w, self.cfg.labels, self.joint_set, j3, K)  # -> the configured joint set
        J = len(j2)
        r = head_r_img
        (nx, ny), (hx, hy), (cx, cy) = uv_img[[B.NECK, B.HEAD, R.HEAD_C]].tolist()
        head_diag = math.hypot(max(nx, hx, cx + r) - min(nx, hx, cx - r), max(ny, hy, cy + r) - min(ny, hy, cy - r))
        lo, hi = uv_img[:n].min(0), uv_img[:n].max(0)
        # every float label in one float32 buffer, handed out as tensor views: one conversion instead of ten
        buf = np.empty(8 * J + 17, dtype=np.float32)
        buf[:2 * J] = j2.ravel()
        buf[2 * J:5 * J] = j3.ravel() if self.cfg.dims == 3 else 0.0
        buf[5 * J:8 * J] = w.ravel()
        o = 8 * J
        buf[o:o + 4] = K
        buf[o + 4:o + 10] = crop.crop_to_image.ravel()
        buf[o + 10:o + 12] = lo
        buf[o + 12:o + 14] = hi - lo
        buf[o + 14:o + 17] = (float(p3[B.PELVIS, 2]) if self.cfg.dims == 3 else 0.0, 0.6 * head_diag * crop.scale,
                              float((hi[0] - lo[0]) * (hi[1] - lo[1])))
        f = torch.from_numpy
        return {
            "image": f(image),
            "joints_2d": f(buf[:2 * J].reshape(J, 2)),
            "joints_3d": f(buf[2 * J:5 * J].reshape(J, 3)),
            "weights": f(buf[5 * J:8 * J].reshape(J, 3)),
            "root_depth": f(buf[o + 14:o + 15].reshape(())),
            "camera": f(buf[o:o + 4]),
            "crop_to_image": f(buf[o + 4:o + 10].reshape(2, 3)),
            "head_size": f(buf[o + 15:o + 16].reshape(())),
            "bbox": f(buf[o + 10:o + 14]),
            "area": f(buf[o + 16:o + 17].reshape(())),
            "meta": {"dataset": self.name, "variant": self.variant, "split": self.split, "index": index,
                     "subject": int(subject.ident), "family": family, "action": family,
                     "truncated": int(truncated), "occluder": int(has_occluder),
                     "num_occluded": int(np.count_nonzero(occ))},
        }


def bone_lengths(joints_3d: np.ndarray) -> dict[str, np.ndarray]:
    """Lengths of the template bones from (..., 17 or 18, 3) H36M joints, per bone name (both sides)."""
    out: dict[str, list[np.ndarray]] = {}
    for p, ch, name in B.BONES:
        out.setdefault(name, []).append(np.linalg.norm(joints_3d[..., ch, :] - joints_3d[..., p, :], axis=-1))
    return {k: np.stack(v, axis=-1) for k, v in out.items()}


def knee_elbow_angles(joints_3d: np.ndarray) -> np.ndarray:
    """Interior angles (deg) at r/l knee and l/r elbow, (..., 4), from H36M joints."""
    def ang(a: int, b: int, c: int) -> np.ndarray:
        u = joints_3d[..., a, :] - joints_3d[..., b, :]
        v = joints_3d[..., c, :] - joints_3d[..., b, :]
        cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    return np.stack([ang(B.R_HIP, B.R_KNEE, B.R_ANKLE), ang(B.L_HIP, B.L_KNEE, B.L_ANKLE),
                     ang(B.L_SHO, B.L_ELB, B.L_WRI), ang(B.R_SHO, B.R_ELB, B.R_WRI)], axis=-1)

