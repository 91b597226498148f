"""Predict poses with a trained run: person boxes -> crops -> batched network -> image pixels and camera mm.

Crops follow the evaluation pipeline of the datasets (``crop_transform`` + ``warp_image`` +
``to_tensor_image``, ImageNet normalisation) and predictions are decoded by the module's own codec,
so a prediction equals what ``posereg-eval`` decodes for the same crop. Boxes: `posereg.inference.boxes`;
what is written: `posereg.inference.writer`.

3D models: ``z_rel_mm = (z_n - 0.5) * depth_range`` is the network's root-relative depth. Camera-frame
millimetres come from back-projecting the crop pixels with the crop camera (``crop_camera`` of the given
image camera, else of an assumed one: f = the image's longer side, principal point at the centre) at
depth ``root_depth + z_rel_mm``. The root depth is the model's estimate when it has one
(``method.root_depth.enabled``) and a camera is given, else the estimator's prior: the crop spans
``depth_range`` mm at the root, z = fx_crop / W_in * depth_range. ``joints_3d_rel_mm`` (minus the root
joint) is always given; ``joints_3d_abs_mm`` only with an estimated root depth and a given camera.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import open_dict
from tqdm.auto import tqdm

from posereg.data.coco import box_to_crop
from posereg.data.datamodule import data_info
from posereg.data.transforms import to_tensor_image, warp_image
from posereg.geometry import crop_camera, crop_transform, invert_affine
from posereg.inference.boxes import BoxSource, PersonBox
from posereg.inference.inputs import Failure, Frame, is_video, read_frames, video_info
from posereg.inference.writer import PredictionWriter
from posereg.methods import PoseModule, build_module
from posereg.methods.initial_weights import without_initial_weights
from posereg.runs.open import OpenedRun
from posereg.skeletons import get_joint_set

PENDING_BYTES = 512 * 2**20


def load_module(opened: OpenedRun, device: torch.device | str = "cpu") -> PoseModule:
    """The opened run's PoseModule with its checkpoint's weights, in eval mode on `device`."""
    cfg = without_initial_weights(opened.cfg)  # a copy: the checkpoint holds every weight
    with open_dict(cfg):
        cfg.data.metrics = {}  # prediction computes no metric: their annotation files need not exist
    module = opened.load_into(build_module(cfg, data_info(cfg)))
    return module.eval().to(device)


@dataclass
class Job:
    """One person crop to run: the normalised crop and its geometry."""

    box: PersonBox
    image: np.ndarray  # (3,H,W) float32, normalised as the datasets do
    A: np.ndarray  # image -> crop affine (2,3)
    camera: np.ndarray  # (4,) image camera used for 3D (given or assumed)


@dataclass
class Predictor:
    """Runs a PoseModule on person crops in batches and decodes them to image pixels (and camera mm)."""

    module: PoseModule
    joint_set: str
    input_size: int
    depth_range: float
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 32
    camera: np.ndarray | None = None  # given image camera (fx, fy, cx, cy); None: assumed per image

    @property
    def dims(self) -> int:
        return int(self.module.codec.dims)

    @property
    def estimates_root(self) -> bool:
        """True when absolute 3D is reported: the model estimates the root depth and a camera was given."""
        return self.dims == 3 and self.module.root_depth is not None and self.camera is not None

    def image_camera(self, width: int, height: int) -> np.ndarray:
        """The given camera, or the assumed one (f = the longer side, principal point at the centre)."""
        if self.camera is not None:
            return self.camera
        f = float(max(width, height))
        return np.array([f, f, width / 2, height / 2])

    def job(self, pixels: np.ndarray, box: PersonBox) -> Job:
        """The crop of one person box, made like the datasets' evaluation crops."""
        center, size = box_to_crop(box.bbox, 1.0, box.padding)
        A = crop_transform(center, size, self.input_size)
        crop = warp_image(pixels, A, self.input_size)
        h, w = pixels.shape[:2]
        return Job(box, to_tensor_image(crop), A, self.image_camera(w, h))

    @torch.no_grad()
    def run(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """Per-person results of jobs, batch_size crops at a time."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(jobs), self.batch_size):
            out += self._run_batch(jobs[i:i + self.batch_size])
        return out

    def _run_batch(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        m = self.module
        images = torch.from_numpy(np.stack([j.image for j in jobs])).to(self.device)
        crop_to_image = torch.from_numpy(np.stack([invert_affine(j.A) for j in jobs]).astype(np.float32))
        outputs, coords = m.predict_coords(images)
        unit = coords[m.cut_index].float()
        logits = outputs[m.cut_index].get("conf_logits")
        conf = None if logits is None else torch.sigmoid(logits.float()).cpu().numpy()
        batch: dict[str, Any] = {"crop_to_image": crop_to_image.to(unit.device)}
        if self.dims == 3:
            cams = torch.from_numpy(np.stack([crop_camera(j.camera, j.A) for j in jobs]).astype(np.float32))
            cams = cams.to(unit.device)
            root = cams[:, 0] / self.input_size * self.depth_range  # prior: the crop spans depth_range mm
            if self.estimates_root:
                root = m.root_depth(outputs, cams).float()
            batch.update(root_depth=root, camera=cams)
        dec = m.codec.decode(unit, batch)
        j2d = dec["joints_2d_image"].cpu().numpy()
        results = []
        for k, job in enumerate(jobs):
            c = None if conf is None else conf[k]
            person: dict[str, Any] = {
                "bbox": list(job.box.bbox), "box_score": job.box.score,
                "crop_to_image": invert_affine(job.A).tolist(),
                "score": float(job.box.score * (1.0 if c is None else float(np.mean(c)))),
                "joints_2d": j2d[k].tolist(), "joint_conf": None if c is None else c.tolist(),
            }
            if self.dims == 3:
                person.update(self._three_d(unit[k], dec["joints_3d_cam"][k], batch["root_depth"][k], job))
            results.append(person)
        return results

    def _three_d(self, unit: torch.Tensor, cam: torch.Tensor, root: torch.Tensor, job: Job) -> dict[str, Any]:
        """The 3D fields of one person (see the module docstring)."""
        cam_np = cam.cpu().double().numpy()
        root_joint = get_joint_set(self.joint_set).root
        rel = cam_np - cam_np[root_joint]
        return {
            "z_rel_mm": ((unit[:, 2].double() - 0.5) * self.depth_range).cpu().tolist(),
            "joints_3d_rel_mm": rel.tolist(),
            "joints_3d_abs_mm": cam_np.tolist() if self.estimates_root else None,
            "root_depth_mm": float(root), "root_depth_source": "estimated" if self.estimates_root else "prior",
            "camera": job.camera.tolist(), "camera_assumed": self.camera is None,
        }


def predict_stream(predictor: Predictor, items: Iterable[Frame | Failure], boxes: BoxSource
                   ) -> Iterator[tuple[Frame, list[dict[str, Any]]] | Failure]:
    """(frame, people) in input order, crops batched across frames; Failures pass through."""
    pending: list[tuple[Frame, list[Job]]] = []
    waiting = held = 0

    def flush() -> Iterator[tuple[Frame, list[dict[str, Any]]]]:
        results = iter(predictor.run([j for _, jobs in pending for j in jobs]))
        for frame, jobs in pending:
            yield frame, [next(results) for _ in jobs]
        pending.clear()

    for item in items:
        if isinstance(item, Failure):
            yield item
            continue
        jobs = [predictor.job(item.pixels, b) for b in boxes(item)]
        pending.append((item, jobs))
        waiting, held = waiting + len(jobs), held + item.pixels.nbytes
        # full batches, but never more than PENDING_BYTES of decoded frames waiting for their overlays
        if waiting >= predictor.batch_size or len(pending) >= predictor.batch_size or held >= PENDING_BYTES:
            yield from flush()
            waiting = held = 0
    yield from flush()


def predict_files(predictor: Predictor, files: Sequence[Path], boxes: BoxSource, writer: PredictionWriter,
                  progress: bool = True, max_pixels: int | None = None) -> dict[str, Any]:
    """Predict on every input file with a progress bar; unreadable files, and files whose header claims more than
    `max_pixels` pixels, are recorded and skipped."""
    total = sum(max(video_info(f)[1], 1) if is_video(f) else 1 for f in files)
    with tqdm(total=total, unit="img", desc="predict", disable=not progress) as bar:
        try:
            for item in predict_stream(predictor, read_frames(files, max_pixels), boxes):
                if isinstance(item, Failure):
                    writer.fail(item)
                else:
                    writer.add(*item)
                bar.update(1)
        finally:
            summary = writer.close()
    return summary
