"""Augmentation config, the crop that keeps 2D/3D labels and cameras exact, label mapping, normalization.

Every dataset (SynthPose and the real adapters) goes through the same steps:

1. ``params = sample_crop_params(augment, rng)`` (identity when ``augment`` is None),
2. ``center, size = apply_crop_params(center, size, params)``,
3. ``crop = crop_sample(image, joints_2d, center, size, input_size, params.rotation, params.flip,
   flip_index, joints_3d=..., camera=..., weights=...)`` warps the image with cv2 and moves every
   label with the same affine (rotation about the optical axis and X negation for 3D, see
   ``posereg.geometry``); joints outside the crop get x,y weight 0 (real datasets take the same steps
   through ``crop_labels`` and ``warp_image``, which reads only the window of the JPEG that
   ``posereg.data.decode`` decoded for that affine),
4. ``Photometric(augment)(crop.image, rng)`` applies the photometric / occlusion ops (albumentations'
   distributions, a fused lookup table for the pointwise ones),
5. ``map_labels`` moves the labels into the configured joint set; ``to_tensor_image`` normalizes.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import cv2
import numpy as np

from posereg.errors import ConfigError
from posereg.geometry import (
    affine_scale,
    apply_affine,
    compose_affine,
    crop_camera,
    crop_points_transform,
    crop_transform,
    cv2_affine,
    invert_affine,
    project,
    warp_size,
)
from posereg.paths import CONF_DIR
from posereg.skeletons import get_joint_set, map_joints

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class AugmentConfig:
    """Training augmentation: geometric (through the crop affine) and photometric / occlusion (albumentations).

    Every field is required: the values live in the config group conf/data/augment/ (`augment_preset` reads
    one option outside a composed config).
    """

    scale: tuple[float, float]  # box-size factor (>1 zooms out)
    rotation: float  # degrees: half-range (uniform) or sigma clipped at 2 sigma (normal)
    rotation_prob: float
    rotation_dist: str  # uniform | normal
    flip_prob: float
    translation: float  # max shift as a fraction of the box size
    brightness: float
    contrast: float
    gain: tuple[float, float]  # per-channel colour multiplier (Sun et al.)
    photometric_prob: float
    blur_prob: float
    noise_prob: float
    occlusion_prob: float  # CoarseDropout-style rectangles
    occlusion_holes: tuple[int, int]
    occlusion_size: tuple[float, float]  # fraction of the crop side

    @classmethod
    def from_cfg(cls, cfg: Any, setting: str = "data.augment") -> AugmentConfig | None:
        """Build from a mapping (OmegaConf or dict) with every field; None/False or `enabled: false` disables
        augmentation. ConfigError naming the setting for an unknown or a missing key."""
        if cfg is None or cfg is False:
            return None
        if isinstance(cfg, AugmentConfig):
            return cfg
        d = dict(cfg)
        if d.pop("enabled", True) is False:
            return None
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"{setting}: unknown keys {unknown}; valid keys are {sorted(names)}")
        missing = [k for k in names if k not in d]
        if missing:
            raise ConfigError(f"{setting}.{missing[0]} is missing: every key of conf/data/augment/default.yaml is "
                              f"required (missing: {missing}); compose an option, e.g. data/augment=default")
        for k in ("scale", "gain", "occlusion_holes", "occlusion_size"):
            d[k] = tuple(d[k])
        aug = cls(**d)
        aug.validate(setting)
        return aug

    def validate(self, setting: str = "data.augment") -> None:
        """ConfigError for impossible values."""
        for k in ("rotation_prob", "flip_prob", "photometric_prob", "blur_prob", "noise_prob", "occlusion_prob"):
            v = getattr(self, k)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{setting}.{k}={v} must be a probability in [0, 1]")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"{setting}.scale={list(self.scale)} must be [min, max] with 0 < min <= max")
        if self.rotation_dist not in ("uniform", "normal"):
            raise ConfigError(f"{setting}.rotation_dist={self.rotation_dist!r}: use 'uniform' or 'normal'")


def augment_preset(name: str, **changes: Any) -> AugmentConfig:
    """The option `conf/data/augment/<name>.yaml` (as Hydra composes it) with `changes` applied."""
    from hydra import compose, initialize_config_dir

    if not (CONF_DIR / "data" / "augment" / f"{name}.yaml").is_file():
        raise ConfigError(f"data/augment={name}: no such option in {CONF_DIR / 'data' / 'augment'}")
    with initialize_config_dir(config_dir=str(CONF_DIR / "data" / "augment"), version_base="1.3"):
        node = dict(compose(config_name=name))
    return cast(AugmentConfig, AugmentConfig.from_cfg({**node, **changes, "enabled": True}, f"data/augment={name}"))


@dataclass(frozen=True)
class CropParams:
    """One draw of the geometric augmentation."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box size


def sample_crop_params(aug: AugmentConfig | None, rng: np.random.Generator) -> CropParams:
    """Random geometric augmentation parameters (identity when aug is None)."""
    if aug is None:
        return CropParams()
    scale = float(rng.uniform(*aug.scale))
    rot = 0.0
    if rng.random() < aug.rotation_prob:
        if aug.rotation_dist == "normal":
            rot = float(np.clip(rng.normal(0.0, aug.rotation), -2 * aug.rotation, 2 * aug.rotation))
        else:
            rot = float(rng.uniform(-aug.rotation, aug.rotation))
    flip = bool(rng.random() < aug.flip_prob)
    t = aug.translation
    shift = (float(rng.uniform(-t, t)), float(rng.uniform(-t, t)))
    return CropParams(scale=scale, rotation=rot, flip=flip, shift=shift)


def apply_crop_params(center: Any, size: float, params: CropParams) -> tuple[np.ndarray, float]:
    """Box centre and side after the scale and translation of params."""
    c = np.asarray(center, dtype=np.float64) + np.asarray(params.shift) * size
    return c, float(size) * params.scale


@dataclass
class Crop:
    """Labels of one crop, all consistent with ``A`` (image -> crop)."""

    image: np.ndarray | None
    joints_2d: np.ndarray
    weights: np.ndarray
    A: np.ndarray
    crop_to_image: np.ndarray
    scale: float
    joints_3d: np.ndarray | None = None
    camera: np.ndarray | None = None


def inside_crop(joints_2d: np.ndarray, out_size: Any) -> np.ndarray:
    """(J,) bool: the point lies inside [0, W) x [0, H)."""
    w, h = warp_size(out_size)
    return (joints_2d[:, 0] >= 0) & (joints_2d[:, 0] < w) & (joints_2d[:, 1] >= 0) & (joints_2d[:, 1] < h)


def crop_labels(A: np.ndarray, joints_2d: np.ndarray, out_size: Any, flip: bool = False,
                flip_index: Any = None, joints_3d: np.ndarray | None = None, camera: Any = None,
                weights: np.ndarray | None = None) -> Crop:
    """Move labels through the image->crop affine A (no image): 2D, 3D (camera frame), camera, weights."""
    j2 = apply_affine(A, np.asarray(joints_2d, dtype=np.float64))
    n = j2.shape[0]
    w = np.ones((n, 3)) if weights is None else np.array(weights, dtype=np.float64)
    j3 = None if joints_3d is None else np.asarray(joints_3d, dtype=np.float64) @ crop_points_transform(A).T
    cam = None if camera is None else crop_camera(camera, A)
    if flip:
        if flip_index is None:
            raise ValueError("crop_labels: flip=True needs the joint set's flip_index")
        fi = np.asarray(flip_index)
        j2, w = j2[fi], w[fi]
        j3 = None if j3 is None else j3[fi]
    w[~inside_crop(j2, out_size), :2] = 0.0
    return Crop(image=None, joints_2d=j2, weights=w, A=A, crop_to_image=invert_affine(A), scale=affine_scale(A),
                joints_3d=j3, camera=cam)


def crop_sample(image: np.ndarray, joints_2d: np.ndarray, center: Any, size: Any, out_size: Any,
                rotation: float = 0.0, flip: bool = False, flip_index: Any = None,
                joints_3d: np.ndarray | None = None, camera: Any = None, weights: np.ndarray | None = None,
                border_value: Any = 0) -> Crop:
    """Crop + warp an original image (HxWx3 uint8) around a box and transform every label consistently."""
    A = crop_transform(center, size, out_size, rotation, flip)
    crop = crop_labels(A, joints_2d, out_size, flip, flip_index, joints_3d, camera, weights)
    crop.image = warp_image(image, A, out_size, border_value=border_value)
    return crop


def warp_image(image: np.ndarray, A: np.ndarray, out_size: Any, to_image: np.ndarray | None = None,
               border_value: Any = 0) -> np.ndarray:
    """The out_size crop by the image->crop affine A of an image, or of pixels that ``to_image`` maps into it.

    ``to_image`` (2,3) takes the pixels of ``image`` to the original image's (a decoded window at a
    reduced scale, :class:`posereg.data.decode.Region`), so one warp reads them directly. A 4-channel
    RGBX image (OpenCV warps 4 channels faster than 3) gives its RGB crop.
    """
    M = A if to_image is None else compose_affine(A, to_image)
    out = cv2.warpAffine(image, cv2_affine(M), warp_size(out_size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
    return cv2.cvtColor(out, cv2.COLOR_RGBA2RGB) if out.ndim == 3 and out.shape[2] == 4 else out


@dataclass
class PhotometricDraw:
    """One draw of the photometric augmentation: pointwise contrast/brightness and gain, then pixel operations."""

    contrast_brightness: tuple[float, float] | None  # (alpha, beta): v -> v * alpha + beta
    gain: np.ndarray | None  # (3,) float32 per-channel multiplier
    blur: np.ndarray | None  # 1-D Gaussian kernel, applied separably
    noise: np.ndarray | None  # HxWx3 float32 standard normals: additive noise times noise_std
    noise_std: float  # in 0..255 units
    dropout_seed: int | None  # seed of one CoarseDropout call

    @property
    def pointwise(self) -> bool:
        """Anything to apply through a lookup table."""
        return self.contrast_brightness is not None or self.gain is not None

    @property
    def pixel_ops(self) -> bool:
        """Anything besides the pointwise part to apply."""
        return self.blur is not None or self.noise is not None or self.dropout_seed is not None

    def values(self, v: np.ndarray) -> np.ndarray:
        """The pointwise part on uint8 pixel values held as float32 (..., 3), modified in place.

        Float32 arithmetic, clipping and truncation to integers, like albucore's uint8 lookup tables.
        """
        if self.contrast_brightness is not None:
            alpha, beta = self.contrast_brightness
            v *= np.float32(alpha)
            v += np.float32(beta)
            np.trunc(np.clip(v, 0, 255, out=v), out=v)
        if self.gain is not None:
            v *= self.gain
            np.trunc(np.clip(v, 0, 255, out=v), out=v)
        return v


def identity_values() -> np.ndarray:
    """(256, 3) float32: every uint8 value of every channel, the start of a chain of pointwise maps."""
    return _IDENTITY.copy()


def apply_values(image: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A pointwise map given as (256, 3) integer-valued float32 values applied to a uint8 HxWx3 image."""
    return cv2.LUT(image, values.astype(np.uint8).reshape(256, 1, 3))


_IDENTITY = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)


def gaussian_kernel_1d(sigma: float, ksize: int) -> np.ndarray:
    """Normalized 1-D Gaussian of odd size ksize (albumentations' / PIL's kernel)."""
    x = np.arange(-(ksize // 2), ksize // 2 + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


@lru_cache(maxsize=8)
def _noise_field(h: int, w: int) -> np.ndarray:
    """A fixed (2h, 2w, 3) float32 field of standard normals (the same in every process)."""
    return np.random.default_rng(20_240_531).standard_normal((2 * h, 2 * w, 3), dtype=np.float32)


class Photometric:
    """Photometric + occlusion augmentation with the parameter distributions of albumentations' ops.

    Brightness/contrast (RandomBrightnessContrast, by max) and the per-channel gain
    (MultiplicativeNoise, per channel, not elementwise) are pointwise, so they run as one lookup
    table; GaussianBlur and GaussNoise follow albumentations' formulas; CoarseDropout runs through
    albumentations itself. Everything is drawn from the per-sample rng, so the result depends only
    on the image and rng.
    """

    def __init__(self, aug: AugmentConfig) -> None:
        self.aug = aug
        self.dropout = None
        if aug.occlusion_prob > 0:
            import albumentations as A

            self.dropout = A.Compose([A.CoarseDropout(
                num_holes_range=tuple(aug.occlusion_holes), hole_height_range=tuple(aug.occlusion_size),
                hole_width_range=tuple(aug.occlusion_size), fill="random_uniform", p=1.0)])

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> PhotometricDraw:
        """The random parameters for one image of ``shape`` (H, W, 3)."""
        a = self.aug
        cb = gain = blur = noise = seed = None
        std = 0.0
        if rng.random() < a.photometric_prob:
            cb = (1.0 + rng.uniform(-a.contrast, a.contrast), 255.0 * rng.uniform(-a.brightness, a.brightness))
        if rng.random() < a.photometric_prob:
            gain = np.array([rng.uniform(*a.gain) for _ in range(3)], dtype=np.float32)
        if a.blur_prob > 0 and rng.random() < a.blur_prob:
            sigma = rng.uniform(0.3, 1.2)
            ksize = int(rng.integers(3, 6))  # 3..5, an even size grows to the next odd one
            blur = gaussian_kernel_1d(sigma, ksize | 1)
        if a.noise_prob > 0 and rng.random() < a.noise_prob:
            std = 255.0 * rng.uniform(0.01, 0.05)
            # a window of a fixed i.i.d. N(0, 1) field at a random offset: i.i.d. per pixel like
            # GaussNoise's map, without drawing H*W*3 normals per image
            h, w = shape[:2]
            oy, ox = int(rng.integers(0, h)), int(rng.integers(0, w))
            noise = _noise_field(h, w)[oy:oy + h, ox:ox + w]
        if self.dropout is not None and rng.random() < a.occlusion_prob:
            seed = int(rng.integers(2**31 - 1))
        return PhotometricDraw(contrast_brightness=cb, gain=gain, blur=blur, noise=noise, noise_std=std,
                               dropout_seed=seed)

    def apply_pixels(self, image: np.ndarray, d: PhotometricDraw) -> np.ndarray:
        """Blur, noise and dropout of a draw (not its pointwise part) on a uint8 HxWx3 image."""
        if d.blur is not None:
            image = cv2.sepFilter2D(image, -1, d.blur, d.blur)
        if d.noise is not None:  # rounded and saturated to uint8
            image = cv2.addWeighted(image, 1.0, d.noise, d.noise_std, 0.0, dtype=cv2.CV_8U)
        if d.dropout_seed is not None and self.dropout is not None:
            # one shared generator pair: cheaper than set_random_seed, which builds two per transform
            self.dropout.set_random_state(np.random.default_rng(d.dropout_seed), random.Random(d.dropout_seed))
            image = self.dropout(image=np.ascontiguousarray(image))["image"]
        return image

    def apply(self, image: np.ndarray, d: PhotometricDraw) -> np.ndarray:
        """A draw applied to a uint8 HxWx3 image."""
        if d.pointwise:
            image = apply_values(image, d.values(identity_values()))
        return self.apply_pixels(image, d) if d.pixel_ops else image

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copy of a uint8 HxWx3 image; the result depends only on the image and rng."""
        return self.apply(image, self.draw(rng, image.shape))


_NORM_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
_NORM_SHIFT = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)
_NORM_TABLE = np.ascontiguousarray((_IDENTITY * _NORM_SCALE + _NORM_SHIFT).T)  # (3, 256)


def to_tensor_image(image: np.ndarray, noise: np.ndarray | None = None, values: np.ndarray | None = None,
                    noise_scale: float = 1.0) -> np.ndarray:
    """uint8 HxWx3 RGB -> normalized float32 3xHxW, in one lookup pass per channel.

    ``values`` (256, 3), a pointwise map of the uint8 values (see ``PhotometricDraw.values``), is
    applied first, fused into the normalization table; ``noise`` (3xHxW, 0..255 units, times
    ``noise_scale``) is added before normalizing.
    """
    table = _NORM_TABLE if values is None else (values * _NORM_SCALE + _NORM_SHIFT).T.copy()
    h, w = image.shape[:2]
    out = np.empty((3, h, w), dtype=np.float32)
    for c, plane in enumerate(cv2.split(image)):
        cv2.LUT(plane, table[c], dst=out[c])
        if noise is not None:
            cv2.scaleAdd(noise[c], float(noise_scale * _NORM_SCALE[c]), out[c], dst=out[c])
    return out


def denormalize_image(image: Any) -> np.ndarray:
    """Normalized 3xHxW (numpy or torch) -> uint8 HxWx3 RGB for display."""
    x = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float32)
    x = x.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def map_labels(joints_2d: np.ndarray, weights: np.ndarray, src: str, dst: str,
               joints_3d: np.ndarray | None = None, camera: Any = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels in joint set src -> dst; unmapped joints get weight 0 on all axes.

    A dst ``thorax`` missing from src (H36M-17 -> H36M-18) is derived as the mean of the shoulders,
    in 3D when both shoulders have 3D labels (then its 2D label is the exact projection), else in 2D.
    """
    if src == dst:
        return joints_2d, weights, joints_3d
    j2, present = map_joints(joints_2d, src, dst)
    w, _ = map_joints(weights, src, dst)
    j3 = None if joints_3d is None else map_joints(joints_3d, src, dst)[0]
    s, d = get_joint_set(src), get_joint_set(dst)
    if "thorax" in d.names and not present[d.index("thorax")] and {"l_shoulder", "r_shoulder"} <= set(s.names):
        t, ls, rs = d.index("thorax"), s.index("l_shoulder"), s.index("r_shoulder")
        w[t] = np.minimum(weights[ls], weights[rs])
        if j3 is not None and w[t, 2] > 0 and camera is not None:
            j3[t] = (joints_3d[ls] + joints_3d[rs]) / 2
            j2[t] = project(j3[t], np.asarray(camera, dtype=np.float64))
        else:
            j2[t] = (joints_2d[ls] + joints_2d[rs]) / 2
            if j3 is not None:
                j3[t] = (joints_3d[ls] + joints_3d[rs]) / 2
    return j2, w, j3
