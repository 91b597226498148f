"""A finished run loaded for prediction, the model behind `posereg.load` and posereg-predict.

    model = posereg.load("runs/default/seed=0")
    result = model.predict(image)                      # RGB uint8 array, PIL image or path; or a list of them
    result = model.predict(image, boxes=[[x, y, w, h]])
    for frame in model.predict_video("clip.mp4"): ...

Crops, batching and decoding are the predictor's (`posereg.inference.predictor`): a prediction equals what
posereg-eval decodes for the same crop. The network's prediction is its `cut` output (the last one unless the
run's config or an override says otherwise): a multi-stage network answers with its last stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from posereg.console import console
from posereg.data.datamodule import DataInfo, data_info
from posereg.data.decode import read_image
from posereg.devices import pick_device
from posereg.errors import ConfigError, DataError
from posereg.inference.boxes import BoxSource, PersonBox, box_padding, box_source
from posereg.inference.inputs import Failure, Frame, read_frames
from posereg.inference.predictor import Predictor, load_module, predict_files, predict_stream
from posereg.inference.result import PoseResult
from posereg.inference.writer import PredictionWriter
from posereg.methods import PoseModule
from posereg.recipes.common import resolve_auto_cut
from posereg.runs.open import OpenedRun
from posereg.skeletons import JointSet, get_joint_set

Boxes = Sequence[Sequence[float]] | np.ndarray  # (N,4) x, y, w, h, or (N,5) with a detection score


def image_pixels(image: Any, where: str = "image") -> np.ndarray:
    """RGB uint8 (H,W,3) pixels of an array (RGB; a grey (H,W) one is repeated), a PIL image or an image file."""
    if isinstance(image, str | Path):
        return read_image(image, where)
    if type(image).__module__.startswith("PIL."):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    given = np.asarray(image)
    pixels = np.repeat(given[:, :, None], 3, axis=2) if given.ndim == 2 else given
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or min(pixels.shape[:2]) < 1:
        raise ConfigError(f"{where}: expected an RGB uint8 array (H,W,3), a PIL image or a file, got an array of "
                          f"shape {given.shape} and dtype {given.dtype}")
    return np.ascontiguousarray(pixels)


def person_boxes(boxes: Boxes, padding: float, where: str = "boxes") -> list[PersonBox]:
    """Detection boxes [x, y, w, h] or [x, y, w, h, score] (one, or a list of them) as person boxes padded like
    posereg-predict's; ConfigError naming `where` for anything else."""
    rows = list(boxes)
    if rows and np.ndim(rows[0]) == 0:
        rows = [rows]  # one box
    out = []
    for row in rows:
        try:
            box = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            box = np.zeros(0)
        if box.shape not in ((4,), (5,)) or not np.isfinite(box).all() or (box[2:4] <= 0).any():
            raise ConfigError(f"{where}: expected [[x, y, w, h(, score)], ...] with w, h > 0 in image pixels, got "
                              f"{np.asarray(boxes, dtype=object).tolist()}")
        xywh = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        out.append(PersonBox(xywh, float(box[4]) if len(box) == 5 else 1.0, padding))
    return out


class PoseModel:
    """A finished run loaded for prediction: its config, checkpoint and joint set, the network in eval mode."""

    def __init__(self, opened: OpenedRun, device: str | None = None, batch_size: int = 32,
                 camera: np.ndarray | None = None):
        self.opened = opened
        self.info: DataInfo = data_info(opened.cfg)
        resolve_auto_cut(opened.cfg, self.info)
        self.device = pick_device(device)
        self.module: PoseModule = load_module(opened, self.device)
        self.predictor = Predictor(self.module, self.info.joint_set, self.info.input_size, self.info.depth_range,
                                   self.device, batch_size, camera)
        self.box_padding = box_padding(opened.cfg)

    @property
    def run(self) -> Path:
        """The run directory."""
        return self.opened.run.path

    @property
    def checkpoint(self) -> Path:
        """The checkpoint file the weights came from."""
        return self.opened.checkpoint

    @property
    def cfg(self) -> DictConfig:
        """The run's config with the overrides it was loaded with."""
        return self.opened.cfg

    @property
    def joint_set(self) -> JointSet:
        """The joint set the network predicts (names, bones, flip pairs)."""
        return get_joint_set(self.info.joint_set)

    @property
    def dims(self) -> int:
        """2 or 3."""
        return self.predictor.dims

    @property
    def output(self) -> str:
        """The network output that predicts (the cut: the last output unless the config says otherwise)."""
        return self.module.output_names[self.module.cut_index]

    def __repr__(self) -> str:
        return (f"PoseModel({self.run}, {self.cfg.method.name}, {self.joint_set.name}, {self.dims}D, "
                f"output {self.output}, {self.device})")

    def _results(self, frames: Iterable[Frame | Failure], boxes: BoxSource) -> Iterator[PoseResult]:
        for item in predict_stream(self.predictor, frames, boxes):
            if isinstance(item, Failure):
                raise DataError(item.error)
            frame, people = item
            yield PoseResult.from_people(people, self.joint_set.name, self.dims, frame.index)

    def _box_source(self, boxes: Sequence[Boxes | None], box: str) -> BoxSource:
        """Per frame (by its image_id, the input's position): the given boxes, else the `box` mode's."""
        whole = box_source(box)
        given = {k: person_boxes(b, self.box_padding, f"boxes[{k}]") for k, b in enumerate(boxes) if b is not None}
        return lambda frame: given[frame.image_id] if frame.image_id in given else whole(frame)

    def predict(self, images: Any, boxes: Any = None, box: str = "whole") -> PoseResult | list[PoseResult]:
        """The people in an image (RGB uint8 array, PIL image or file) or in each of a list of them: one person
        per box (`boxes` [[x, y, w, h], ...] for one image, a list of those for a list), else one in the whole
        image (`box="whole"`) or its centred square (`box="center"`)."""
        single = not isinstance(images, list | tuple)
        items = [images] if single else list(images)
        per_image = [boxes] if single else list(boxes) if boxes is not None else [None] * len(items)
        if len(per_image) != len(items):
            raise ConfigError(f"boxes: {len(per_image)} box lists for {len(items)} images; give one per image")
        frames = [Frame(Path(str(x)) if isinstance(x, str | Path) else Path(f"image{k}"),
                        image_pixels(x, f"images[{k}]" if not single else "image"), k) for k, x in enumerate(items)]
        results = list(self._results(frames, self._box_source(per_image, box)))
        return results[0] if single else results

    def predict_video(self, path: str | Path, boxes: dict[int, Boxes] | None = None, box: str = "whole"
                      ) -> Iterator[PoseResult]:
        """A PoseResult per frame of a video file (frame numbers from 0), read and predicted in batches; `boxes`
        maps a frame number to its boxes (other frames: the `box` mode)."""
        video = Path(path)
        if not video.is_file():
            raise ConfigError(f"video {video}: no such file")
        given = {int(k): person_boxes(b, self.box_padding, f"boxes[{k}]") for k, b in (boxes or {}).items()}
        whole = box_source(box)
        yield from self._results(read_frames([video]),
                                 lambda frame: given[frame.index] if frame.index in given else whole(frame))

    def predict_files(self, files: Sequence[Path], out: Path, boxes: BoxSource, described: dict[str, Any],
                      overlays: bool = True, progress: bool = True, max_pixels: int | None = None) -> dict[str, Any]:
        """posereg-predict's outputs for image and video files under `out` (`posereg.inference.writer`):
        overlays, predictions.json, COCO results where the joint set maps into COCO-17; returns the summary.
        Files whose header claims more than `max_pixels` pixels (None: no limit) are skipped before decoding.
        `described` adds to the header what the command line chose (boxes, camera, overrides)."""
        js, module = self.joint_set, self.module
        header = {"run": str(self.run), "checkpoint": str(self.checkpoint), "method": str(self.cfg.method.name),
                  "joint_set": js.name, "joint_names": list(js.names), "bones": [list(b) for b in js.bones],
                  "dims": self.dims, "input_size": self.info.input_size, "depth_range": self.info.depth_range,
                  "cut": self.output, "flip_test": module.flip_test,
                  "camera": None if self.predictor.camera is None else self.predictor.camera.tolist(),
                  "coordinates": "joints_2d: original image pixels, continuous (pixel centre at +0.5); "
                                 "coco_results.json: COCO's 0-based pixel centres (minus 0.5); 3D: camera frame, mm",
                  **described}
        writer = PredictionWriter(out, header, overlays=overlays)
        console.print(f"posereg-predict: {len(files)} input file(s), {header['method']} ({self.output}) on "
                      f"{self.device}")
        return predict_files(self.predictor, files, boxes, writer, progress=progress, max_pixels=max_pixels)
