"""What posereg-predict writes: overlays, predictions.json, coco_results.json, per video an mp4 and a JSON.

One person's record (``predictions.json`` images[].people[], ``videos/<stem>.json`` frames[].people[]):
``bbox`` [x,y,w,h] and ``box_score``; ``crop_to_image`` (2,3); ``joints_2d`` (J,2) original image pixels,
continuous (pixel centre at +0.5); ``joint_conf`` (J,) or null; ``score`` = box_score x mean joint_conf
(1 without one); 3D only: ``z_rel_mm`` (J,), ``joints_3d_rel_mm`` (J,3), ``joints_3d_abs_mm`` (J,3) or
null, ``root_depth_mm``, ``root_depth_source`` (estimated | prior), ``camera`` (image fx,fy,cx,cy) and
``camera_assumed``. ``predictions.json``'s header names the joint set, its ``joint_names`` in order and its
``bones``. ``coco_results.json`` holds COCO keypoint results of still images, written only when every COCO-17
keypoint has a counterpart in the run's joint set (`posereg.skeletons` mappings; in practice coco17 runs):
image_id (the file stem as an int when it is all digits, else the stem), category_id 1, keypoints
[x-0.5, y-0.5, v]*17 in COCO's keypoint order with v = the joint confidence (1 without one), and score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posereg.errors import DataError
from posereg.inference.inputs import Failure, Frame, video_info
from posereg.jsonio import atomic_write_bytes, to_jsonable
from posereg.skeletons import get_joint_set, mapping_indices


def _compact_json(path: Path, data: Any) -> None:
    """Write JSON without indentation (per-frame files get long), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(to_jsonable(data), separators=(",", ":"), allow_nan=False) + "\n").encode())


def coco_order(joint_set: str) -> list[int] | None:
    """For each COCO-17 keypoint, its index in `joint_set`; None when one of them has no counterpart there."""
    order = mapping_indices(joint_set, "coco17")
    return None if min(order) < 0 else order


def coco_result(image_id: int | str, person: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """One COCO keypoint result in COCO-17's order (`order`: each keypoint's index in the person's joints):
    0-based pixel-centre coordinates (posereg's minus 0.5), v = confidence or 1."""
    xy = np.asarray(person["joints_2d"], dtype=np.float64)[order] - 0.5
    conf = np.ones(len(xy)) if person["joint_conf"] is None else np.asarray(person["joint_conf"], np.float64)[order]
    keypoints = np.concatenate([xy, conf[:, None]], axis=1).ravel().tolist()
    return {"image_id": image_id, "category_id": 1, "keypoints": keypoints, "score": float(person["score"])}


@dataclass
class _VideoOut:
    """The overlay video and per-frame records of the video being written."""

    source: Path
    writer: Any
    path: Path
    fps: float
    width: int
    height: int
    frames: list[dict[str, Any]] = field(default_factory=list)


class PredictionWriter:
    """Writes overlays, predictions.json, coco_results.json, and per video an overlay mp4 plus a JSON of frames.

    Layout under ``out``: ``overlays/<stem>.jpg`` (images), ``overlays/<stem>.mp4`` (videos, same fps,
    mp4v), ``videos/<stem>.json`` (per-frame people), ``predictions.json`` (header, images, videos,
    failures) and ``coco_results.json`` (still images only, in COCO-17's order where the joint set has one).
    """

    def __init__(self, out: Path, header: dict[str, Any], overlays: bool = True):
        self.out = Path(out)
        self.header = header
        self.joint_set = str(header["joint_set"])
        self.coco_order = coco_order(self.joint_set)
        self.dims = int(header["dims"])
        self.overlays = overlays
        self.images: list[dict[str, Any]] = []
        self.videos: list[dict[str, Any]] = []
        self.coco: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self._video: _VideoOut | None = None
        self._names: set[str] = set()
        self.out.mkdir(parents=True, exist_ok=True)

    def _unique(self, stem: str, ext: str) -> str:
        """`<stem><ext>`, numbered when two inputs share a stem."""
        name, k = f"{stem}{ext}", 1
        while name in self._names:
            name, k = f"{stem}_{k}{ext}", k + 1
        self._names.add(name)
        return name

    def overlay(self, frame: Frame, people: list[dict[str, Any]]) -> np.ndarray:
        """The frame with every person's skeleton and box, plus a 3D panel for 3D models (RGB)."""
        from posereg.viz.overlay import beside, draw_pose, skeleton_panel

        img = frame.pixels.copy()
        for p in people:
            img = draw_pose(img, np.asarray(p["joints_2d"]), self.joint_set, p["bbox"])
        if self.dims == 3:
            side = min(img.shape[0], 480)  # matplotlib renders small; `beside` scales it to the image height
            img = beside(img, skeleton_panel([np.asarray(p["joints_3d_rel_mm"]) for p in people], self.joint_set, side))
        return img

    def add(self, frame: Frame, people: list[dict[str, Any]]) -> None:
        """Record (and draw) one frame's people."""
        if frame.is_video:
            self._add_video_frame(frame, people)
            return
        self._finish_video()
        h, w = frame.pixels.shape[:2]
        record: dict[str, Any] = {"file": str(frame.source), "image_id": frame.image_id, "width": w, "height": h,
                                  "people": people, "overlay": None}
        if self.overlays:
            import cv2

            name = self._unique(frame.source.stem, ".jpg")
            path = self.out / "overlays" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), cv2.cvtColor(self.overlay(frame, people), cv2.COLOR_RGB2BGR)):
                raise DataError(f"out={self.out}: cannot write {path}")
            record["overlay"] = str(path.relative_to(self.out))
        self.images.append(record)
        if self.coco_order is not None:
            self.coco += [coco_result(frame.image_id, p, self.coco_order) for p in people]

    def _add_video_frame(self, frame: Frame, people: list[dict[str, Any]]) -> None:
        import cv2

        v = self._video
        if v is None or v.source != frame.source:
            self._finish_video()
            fps, _ = video_info(frame.source)
            fps = fps if fps > 0 else 25.0  # containers without a rate: OpenCV's writer needs one
            path = self.out / "overlays" / self._unique(frame.source.stem, ".mp4")
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.pixels.shape[:2]
            v = self._video = _VideoOut(frame.source, None, path, fps, w, h)
        image = self.overlay(frame, people) if self.overlays else None
        if image is not None:
            if v.writer is None:
                v.writer = cv2.VideoWriter(str(v.path), cv2.VideoWriter_fourcc(*"mp4v"), v.fps,
                                           (image.shape[1], image.shape[0]))
                if not v.writer.isOpened():
                    raise DataError(f"out={self.out}: OpenCV cannot write the mp4v video {v.path}")
            v.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        v.frames.append({"frame": frame.index, "people": people})

    def _finish_video(self) -> None:
        """Close the current video and write its per-frame JSON."""
        v = self._video
        if v is None:
            return
        self._video = None
        if v.writer is not None:
            v.writer.release()
        json_path = self.out / "videos" / f"{v.path.stem}.json"
        _compact_json(json_path, {**self.header, "file": str(v.source), "fps": v.fps, "frames": v.frames})
        self.videos.append({"file": str(v.source), "fps": v.fps, "num_frames": len(v.frames), "width": v.width,
                            "height": v.height,
                            "overlay": str(v.path.relative_to(self.out)) if v.writer is not None else None,
                            "frames": str(json_path.relative_to(self.out))})

    def fail(self, failure: Failure) -> None:
        """Record an unreadable input."""
        self.failures.append(failure)

    def close(self) -> dict[str, Any]:
        """Finish the last video, write predictions.json and (in COCO-17's order) coco_results.json; returns the
        summary (with `coco_skipped`, one line, when the joint set has no COCO-17 order)."""
        self._finish_video()
        failures = [{"file": str(f.source), "error": f.error} for f in self.failures]
        _compact_json(self.out / "predictions.json", {**self.header, "images": self.images, "videos": self.videos,
                                                       "failures": failures})
        skipped = None
        if self.coco_order is not None:
            _compact_json(self.out / "coco_results.json", self.coco)
        else:
            missing = [n for n, i in zip(get_joint_set("coco17").names, mapping_indices(self.joint_set, "coco17"),
                                         strict=True) if i < 0]
            skipped = (f"no coco_results.json: {self.joint_set} has no {', '.join(missing)} of COCO-17; "
                       f"predictions.json holds the {self.joint_set} joints in their order (joint_names)")
        return {"coco_skipped": skipped, "images": len(self.images), "videos": len(self.videos),
                "frames": sum(v["num_frames"] for v in self.videos),
                "people": sum(len(i["people"]) for i in self.images), "failures": failures, "out": str(self.out)}
