"""Shared helpers for the real-dataset adapters: roots, files, images and per-record checks.

Every check raises :class:`posereg.errors.DataError` naming the file and the record, or
:class:`posereg.errors.ConfigError` naming the setting. With ``skip_bad_records=True`` the record
checks run by :func:`filter_records` skip the bad records instead and report them in one warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from posereg.data.decode import Region, check_decoder, decode_for_crop
from posereg.data.transforms import (
    AugmentConfig,
    Photometric,
    apply_crop_params,
    crop_labels,
    identity_values,
    map_labels,
    sample_crop_params,
    to_tensor_image,
    warp_image,
)
from posereg.errors import ConfigError, DataError
from posereg.geometry import crop_transform
from posereg.skeletons import check_mappable, get_joint_set

T = TypeVar("T")

_MISSING = (None, "", "???")


def require_root(root: Any, setting: str = "data.root") -> Path:
    """The dataset root as an existing directory, or a ConfigError naming the setting."""
    if root in _MISSING or (isinstance(root, str) and root.startswith("???")):
        raise ConfigError(f"{setting} is not set: pass {setting}=/path/to/dataset (layout: docs/datasets.md)")
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{setting}={root!s} is not a directory: point it at the dataset folder "
                          "(see docs/datasets.md for the expected layout)")
    return path.resolve()


def require_file(root: Path, relative: str | Path, setting: str) -> Path:
    """root/relative as an existing file, or a ConfigError naming the file and the setting that names it."""
    path = Path(relative)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise ConfigError(f"{setting}: file {path} does not exist; check {setting} and the layout in "
                          "docs/datasets.md")
    return path


def record_name(file: Path | str, record: int | str) -> str:
    """How messages name one record: '<file> record <record>'."""
    return f"{file} record {record}"


def check_joints(joints: Any, num_joints: int, dims: int, where: str, what: str = "joints") -> np.ndarray:
    """joints as float64 (num_joints, >=dims); DataError on a wrong joint count or NaN/inf among the first dims."""
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != num_joints or arr.shape[1] < dims:
        raise DataError(f"{where}: {what} has shape {tuple(arr.shape)}, expected ({num_joints}, {dims}): "
                        "the annotation does not match this dataset's joint set")
    bad = ~np.isfinite(arr[:, :dims])
    if bad.any():
        joints_bad = sorted({int(j) for j in np.nonzero(bad)[0]})
        raise DataError(f"{where}: {what} has NaN/inf coordinates at joints {joints_bad}; fix the annotation "
                        "or set skip_bad_records=true")
    return arr


def check_finite(value: Any, where: str, what: str) -> np.ndarray:
    """value as a float64 array, DataError if it holds NaN or inf."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{where}: {what} is not finite ({arr.tolist()})")
    return arr


def filter_records(items: Sequence[T], check: Callable[[int, T], Any], skip_bad_records: bool,
                   dataset: str) -> list[Any]:
    """check(i, item) for every item; keep its results. A DataError raises, or is skipped and counted."""
    out: list[Any] = []
    skipped: list[str] = []
    for i, item in enumerate(items):
        try:
            out.append(check(i, item))
        except DataError as e:
            if not skip_bad_records:
                raise
            skipped.append(str(e))
    if skipped:
        warnings.warn(f"{dataset}: skipped {len(skipped)} bad record(s) of {len(items)} "
                      f"(skip_bad_records=true); first: {skipped[0]}", stacklevel=2)
    if not out:
        raise DataError(f"{dataset}: no usable records left ({len(items)} read, {len(skipped)} skipped)")
    return out


def resolve_inside(root: Path, relative: str | Path, setting: str) -> Path:
    """root/relative, refused (ConfigError) when it resolves outside the dataset root."""
    path = Path(relative)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ConfigError(f"{setting}={relative!s} resolves to {path}, outside the dataset root {root}: "
                          "pickled files are only loaded from inside the configured root, because unpickling "
                          "a file can run code; copy the file into the dataset folder")
    return path


@dataclass
class PoseRecord:
    """One annotated person in original image pixels (continuous convention), before any crop."""

    image: Path
    joints_2d: np.ndarray  # (J_src, 2) continuous image pixels
    visible: np.ndarray  # (J_src,) 1 where the 2D label is present and valid
    center: np.ndarray  # (2,) crop box centre in image pixels
    box_size: np.ndarray  # (2,) crop box (w, h) in image pixels
    meta: dict[str, Any]
    joints_3d: np.ndarray | None = None  # (J_src, 3) camera frame, mm
    visible_3d: np.ndarray | None = None  # (J_src,) 1 where the 3D label is present
    camera: np.ndarray | None = None  # (4,) fx, fy, cx, cy of the original image
    head_size: float = 0.0  # PCKh normalizer in image pixels (0 when unknown)
    bbox: np.ndarray = field(default_factory=lambda: np.zeros(4))  # person box xywh, image pixels
    area: float = 0.0


# Every real adapter's meta has exactly these keys, so batches that mix adapters collate.
META_DEFAULTS: dict[str, Any] = {"dataset": "", "index": -1, "image": "", "subject": "", "action": "",
                                 "subaction": "", "camera": "", "frame": -1, "image_id": -1, "ann_id": -1,
                                 "box_score": 1.0, "centric": ""}


def sample_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """meta restricted to META_DEFAULTS' keys, missing ones filled with their defaults."""
    return {k: meta.get(k, v) for k, v in META_DEFAULTS.items()}


def make_sample(rec: PoseRecord, image: np.ndarray | Callable[[np.ndarray], Region], src: str, dst: str,
                input_size: Any, augment: AugmentConfig | None, rng: np.random.Generator,
                photometric: Photometric | None = None) -> dict[str, Any]:
    """The DESIGN section 2 sample of one record, through the shared crop pipeline of ``transforms``.

    ``image`` is the decoded original image, or a function of the image->crop affine that decodes
    only what that crop reads (:func:`posereg.data.decode.decode_for_crop`); labels come from the
    affine alone, so both give the same labels, camera and crop_to_image.
    """
    src_js = get_joint_set(src)
    params = sample_crop_params(augment, rng)
    aspect = float(rec.box_size[0] / rec.box_size[1])
    center, side = apply_crop_params(rec.center, float(rec.box_size[1]), params)
    has_3d = rec.joints_3d is not None
    vis3 = rec.visible_3d if has_3d and rec.visible_3d is not None else np.zeros(len(rec.visible))
    weights = np.stack([rec.visible, rec.visible, vis3 if has_3d else np.zeros_like(vis3)], axis=-1)
    A = crop_transform(center, (side * aspect, side), input_size, params.rotation, params.flip)
    crop = crop_labels(A, rec.joints_2d, input_size, params.flip, src_js.flip_index, rec.joints_3d, rec.camera,
                       weights)
    region = image(A) if callable(image) else Region(image)
    crop.image = warp_image(region.pixels, A, input_size, region.to_image)
    if augment is None:
        # Evaluation protocols count every labelled joint, also those outside the crop.
        crop.weights[:, :2] = weights[:, :2]
    pixels, values = crop.image, None
    if photometric is not None and augment is not None:
        draw = photometric.draw(rng, pixels.shape)
        if draw.pixel_ops:
            pixels = photometric.apply(pixels, draw)
        elif draw.pointwise:  # fused into the normalization's lookup tables: one pass over the crop less
            values = draw.values(identity_values())
    j2, w, j3 = map_labels(crop.joints_2d, crop.weights, src, dst, crop.joints_3d, crop.camera)
    n = len(j2)
    root_depth = float(crop.joints_3d[src_js.root, 2]) if has_3d else 0.0
    sample = {
        "image": torch.from_numpy(to_tensor_image(pixels, values=values)),
        "joints_2d": torch.from_numpy(np.asarray(j2, dtype=np.float32)),
        "joints_3d": torch.from_numpy(np.zeros((n, 3), np.float32) if j3 is None else np.asarray(j3, np.float32)),
        "weights": torch.from_numpy(np.asarray(w, dtype=np.float32)),
        "root_depth": torch.tensor(root_depth, dtype=torch.float32),
        "camera": torch.from_numpy(np.zeros(4, np.float32) if crop.camera is None
                                   else np.asarray(crop.camera, np.float32)),
        "crop_to_image": torch.from_numpy(np.asarray(crop.crop_to_image, dtype=np.float32)),
        "head_size": torch.tensor(rec.head_size * crop.scale, dtype=torch.float32),
        "bbox": torch.from_numpy(np.asarray(rec.bbox, dtype=np.float32)),
        "area": torch.tensor(rec.area, dtype=torch.float32),
        "meta": sample_meta(rec.meta),
    }
    return sample


class RecordDataset(Dataset):
    """A map-style dataset over checked PoseRecords: reads the image, crops, maps into ``joint_set``."""

    name = "records"
    source_joint_set = "mpii16"
    has_2d = True
    has_3d = False

    @classmethod
    def source_info(cls, root: Any = None, setting: str = "data.root", **_: Any) -> dict[str, Any]:
        """What the data module needs before building anything; checks the root early."""
        require_root(root, setting)
        return {"has_2d": cls.has_2d, "has_3d": cls.has_3d, "joint_set": cls.source_joint_set}

    def __init__(self, records: list[PoseRecord], joint_set: str | None = None, input_size: Any = 256,
                 augment: Any = None, seed: int = 0, split: str = "train", skip_bad_records: bool = False,
                 decoder: str = "auto") -> None:
        self.records = records
        self.split = split
        self.skip_bad_records = bool(skip_bad_records)
        self.decoder = check_decoder(decoder)  # posereg.data.decode.DECODERS; "pil" decodes whole images as before
        self._unreadable: set[int] = set()
        self.joint_set = get_joint_set(joint_set or self.source_joint_set).name
        check_mappable(self.source_joint_set, self.joint_set)
        self.input_size = input_size
        self.augment = AugmentConfig.from_cfg(augment)
        self.photometric = Photometric(self.augment) if self.augment is not None else None
        self.seed = int(seed)
        self._draws = 0

    def __len__(self) -> int:
        return len(self.records)

    def rng(self, index: int) -> np.random.Generator:
        """Per-sample generator: fixed for evaluation; for training it also varies with each draw and worker."""
        if self.augment is None:
            return np.random.default_rng([self.seed, index])
        self._draws += 1
        return np.random.default_rng([self.seed, index, self._draws, torch.initial_seed() % 2**32])

    def load(self, index: int) -> dict[str, Any]:
        """The sample of record index; DataError naming the file when its image cannot be decoded."""
        rec = self.records[index]
        where = record_name(rec.meta.get("image", rec.image), f"{self.name} index {index}")

        def pixels(A: np.ndarray) -> Region:
            return decode_for_crop(rec.image, A, self.input_size, where, self.decoder)

        return make_sample(rec, pixels, self.source_joint_set, self.joint_set, self.input_size, self.augment,
                           self.rng(index), self.photometric)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """load(index); while training with skip_bad_records, an unreadable image gives the next readable record."""
        if not (self.skip_bad_records and self.split == "train"):
            try:
                return self.load(index)
            except DataError as e:
                raise DataError(f"{e}{self._skip_hint()}") from None
        n = len(self.records)
        for k in range(n):
            i = (index + k) % n
            if i in self._unreadable:
                continue
            try:
                return self.load(i)
            except DataError as e:
                self._unreadable.add(i)
                warnings.warn(f"{self.name} {self.split}: skipping an unreadable image (skip_bad_records=true): {e}",
                              stacklevel=2)
        raise DataError(f"{self.name} {self.split}: no record has a readable image ({n} tried)")

    def _skip_hint(self) -> str:
        """What skip_bad_records can do about an unreadable image in this split."""
        if self.split != "train":
            return " (evaluation never skips records: skip_bad_records=true skips unreadable images only in training)"
        return "; or set skip_bad_records=true to skip unreadable images in training"


def for_split(value: Any, split: str, setting: str) -> Any:
    """A per-split setting: a plain value, or a mapping split -> value (test falls back to val)."""
    if isinstance(value, Mapping):
        if split in value:
            return value[split]
        if split == "test" and "val" in value:
            return value["val"]
        raise ConfigError(f"{setting} has no entry for split {split!r} (it has {sorted(value)})")
    return value
