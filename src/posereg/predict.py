"""Predict poses with a trained run: person boxes -> crops -> batched network -> image pixels and camera mm.

Crops follow the evaluation pipeline of the datasets (``crop_transform`` + ``warp_image`` +
``to_tensor_image``, ImageNet normalisation) and predictions are decoded by the module's own codec,
so a prediction equals what ``posereg-eval`` decodes for the same crop.

Boxes (xywh, original image pixels) become square crops as COCO's (``posereg.data.coco.box_to_crop``):
widened to the input aspect ratio, then padded by the run's ``box_padding`` (the first data source's,
1.25 when it has none; SynthPose's margins are 1.15-1.35) for detection boxes, and not padded for the
whole image or its largest centred square, which are the crop already.

3D models: ``z_rel_mm = (z_n - 0.5) * depth_range`` is the network's root-relative depth. Camera-frame
millimetres come from back-projecting the crop pixels with the crop camera (``crop_camera`` of the given
image camera, else of an assumed one: f = the image's longer side, principal point at the centre) at
depth ``root_depth + z_rel_mm``. The root depth is the model's estimate when it has one
(``method.root_depth.enabled``) and a camera is given, else the estimator's prior: the crop spans
``depth_range`` mm at the root, z = fx_crop / W_in * depth_range. ``joints_3d_rel_mm`` (minus the root
joint) is always given; ``joints_3d_abs_mm`` only with an estimated root depth and a given camera.

One person's record (``predictions.json`` images[].people[], ``videos/<stem>.json`` frames[].people[]):
``bbox`` [x,y,w,h] and ``box_score``; ``crop_to_image`` (2,3); ``joints_2d`` (J,2) original image pixels,
continuous (pixel centre at +0.5); ``joint_conf`` (J,) or null; ``score`` = box_score x mean joint_conf
(1 without one); 3D only: ``z_rel_mm`` (J,), ``joints_3d_rel_mm`` (J,3), ``joints_3d_abs_mm`` (J,3) or
null, ``root_depth_mm``, ``root_depth_source`` (estimated | prior), ``camera`` (image fx,fy,cx,cy) and
``camera_assumed``. ``coco_results.json`` holds COCO keypoint results of still images: image_id (the
file stem as an int when it is all digits, else the stem), category_id 1, keypoints [x-0.5, y-0.5, v]*J
in the run's joint order with v = the joint confidence (1 without one), and score.
"""

from __future__ import annotations

import copy
import glob
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from posereg.data.coco import box_to_crop
from posereg.data.datamodule import data_info
from posereg.data.decode import read_image
from posereg.data.transforms import to_tensor_image, warp_image
from posereg.errors import ConfigError, DataError
from posereg.geometry import crop_camera, crop_transform, invert_affine
from posereg.methods import PoseModule, build_module
from posereg.runs.checkpoints import load_checkpoint
from posereg.skeletons import get_joint_set

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
BOX_MODES = ("whole", "center")
DEFAULT_PADDING = 1.25
PENDING_BYTES = 512 * 2**20


def box_padding(cfg: DictConfig) -> float:
    """The run's crop padding for detection boxes: the first data source's box_padding, else 1.25."""
    for src in (cfg.data.get("sources") or {}).values():
        if src is not None and src.get("box_padding") is not None:
            return float(src.box_padding)
    return DEFAULT_PADDING


def pick_device(name: str | None) -> torch.device:
    """cuda when available (or asked for), else cpu; ConfigError for cuda on a machine without it."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: this machine has no CUDA device; use device=cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ConfigError(f"device={name}: use cpu or cuda (cuda:<index>)")
    return torch.device(name)


def load_module(cfg: DictConfig, checkpoint: Path, device: torch.device | str = "cpu") -> PoseModule:
    """The run's PoseModule with the checkpoint's weights (loaded safely), in eval mode on `device`."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.metrics = {}  # prediction computes no metric: their annotation files need not exist
    module = build_module(cfg, data_info(cfg))
    state = load_checkpoint(checkpoint, trust=bool(cfg.get("trust_checkpoints", False)))
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"checkpoint {checkpoint} does not fit the run's config ({first}); was the config "
                          "overridden with another network?") from None
    return module.eval().to(device)


def parse_camera(text: str | None) -> np.ndarray | None:
    """`fx,fy,cx,cy` (original image pixels) as a (4,) array; None when not given."""
    if text in (None, ""):
        return None
    try:
        cam = np.array([float(v) for v in str(text).split(",")], dtype=np.float64)
    except ValueError:
        cam = np.zeros(0)
    if cam.shape != (4,) or not np.isfinite(cam).all() or (cam[:2] <= 0).any():
        raise ConfigError(f"camera={text}: give fx,fy,cx,cy in original image pixels (fx, fy > 0)")
    return cam


def image_key(name: str) -> int | str:
    """The image_id of a file: its stem as an int when it is all digits (COCO's names), else the stem."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else stem



@dataclass(frozen=True)
class PersonBox:
    """One person box in original image pixels (xywh, continuous) and its detection score."""

    bbox: tuple[float, float, float, float]
    score: float = 1.0
    padding: float = 1.0


def whole_box(width: int, height: int) -> PersonBox:
    """The whole image as the person box (widened to a square crop, not padded)."""
    return PersonBox((0.0, 0.0, float(width), float(height)))


def center_box(width: int, height: int) -> PersonBox:
    """The largest centred square of the image."""
    s = float(min(width, height))
    return PersonBox(((width - s) / 2, (height - s) / 2, s, s))


def read_boxes(path: Path, score_thr: float = 0.0, padding: float = DEFAULT_PADDING) -> dict[Any, list[PersonBox]]:
    """COCO detections ([{image_id | file_name, bbox: [x,y,w,h], score}]) grouped by image_id and by file name."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"boxes={path}: no such file")
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"boxes={path}: not a JSON file ({err})") from None
    if not isinstance(entries, list):
        raise ConfigError(f"boxes={path}: expected a list of COCO detections [{{image_id, bbox, score}}, ...]")
    out: dict[Any, list[PersonBox]] = {}
    for k, e in enumerate(entries):
        where = f"boxes={path} entry {k}"
        if not isinstance(e, dict) or "bbox" not in e or not ({"image_id", "file_name"} & set(e)):
            raise ConfigError(f"{where}: needs bbox and image_id or file_name")
        if e.get("category_id", 1) != 1:
            continue  # not a person
        try:
            bbox = tuple(float(v) for v in e["bbox"])
            score = float(e.get("score", 1.0))
        except (TypeError, ValueError):
            bbox, score = (), float("nan")
        if len(bbox) != 4 or not np.isfinite([*bbox, score]).all() or bbox[2] <= 0 or bbox[3] <= 0:
            raise ConfigError(f"{where}: bbox must be [x, y, w, h] with w, h > 0 and a finite score")
        if score < score_thr:
            continue
        key = e["file_name"] if "file_name" in e else e["image_id"]
        if isinstance(key, str) and "file_name" in e:
            key = Path(key).name
        out.setdefault(key, []).append(PersonBox(bbox, score, padding))  # type: ignore[arg-type]
    return out



@dataclass
class Frame:
    """One image to predict on: a still image, or frame `index` of a video."""

    source: Path
    pixels: np.ndarray  # RGB uint8 (H,W,3)
    image_id: int | str
    index: int = -1  # frame number of a video, -1 for a still image

    @property
    def is_video(self) -> bool:
        return self.index >= 0


@dataclass
class Failure:
    """An input that could not be read, and why."""

    source: Path
    error: str


def list_inputs(spec: str) -> list[Path]:
    """The files of `input=`: one file, a folder's images and videos (sorted), or a glob's matches."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS + VIDEO_EXTS)
        if not files:
            raise ConfigError(f"input={spec}: the folder holds no image or video file "
                              f"({', '.join(IMAGE_EXTS + VIDEO_EXTS)})")
        return files
    if glob.has_magic(spec):
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
        if not files:
            raise ConfigError(f"input={spec}: no file matches the pattern")
        return files
    raise ConfigError(f"input={spec}: no such file or folder")


def is_video(path: Path) -> bool:
    """True for a video file (by extension)."""
    return path.suffix.lower() in VIDEO_EXTS


def video_info(path: Path) -> tuple[float, int]:
    """(fps, frame count) of a video as OpenCV reports them (0 when unknown)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 0.0), int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()


def read_frames(files: Sequence[Path]) -> Iterator[Frame | Failure]:
    """Frames of the inputs in order; an unreadable file gives one Failure and the rest go on."""
    import cv2

    for f in files:
        if not is_video(f):
            try:
                yield Frame(f, read_image(f, "input"), image_key(f.name))
            except DataError as err:
                yield Failure(f, str(err))
            continue
        cap = cv2.VideoCapture(str(f))
        if not cap.isOpened():
            yield Failure(f, f"input: video {f} cannot be opened by OpenCV")
            continue
        count = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield Frame(f, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), count, index=count)
                count += 1
        finally:
            cap.release()
        if count == 0:
            yield Failure(f, f"input: video {f} has no readable frame")



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


BoxSource = Callable[[Frame], list[PersonBox]]


def box_source(mode: str, boxes: dict[Any, list[PersonBox]] | None = None) -> BoxSource:
    """Person boxes per frame: from a detections dict (by file name, then image_id), the whole image or its centre."""
    if boxes is not None:
        def from_file(frame: Frame) -> list[PersonBox]:
            if not frame.is_video and frame.source.name in boxes:
                return boxes[frame.source.name]
            return boxes.get(frame.image_id, [])

        return from_file
    if mode not in BOX_MODES:
        raise ConfigError(f"box={mode}: use one of {', '.join(BOX_MODES)}, or boxes=<detections json>")
    make = whole_box if mode == "whole" else center_box
    return lambda frame: [make(frame.pixels.shape[1], frame.pixels.shape[0])]


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



def _compact_json(path: Path, data: Any) -> None:
    """Write JSON without indentation (per-frame files get long), atomically."""
    import json

    from posereg.jsonio import atomic_write_bytes, to_jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(to_jsonable(data), separators=(",", ":"), allow_nan=False) + "\n").encode())


def coco_result(image_id: int | str, person: dict[str, Any]) -> dict[str, Any]:
    """One COCO keypoint result: 0-based pixel-centre coordinates (posereg's minus 0.5), v = confidence or 1."""
    xy = np.asarray(person["joints_2d"], dtype=np.float64) - 0.5
    conf = np.ones(len(xy)) if person["joint_conf"] is None else np.asarray(person["joint_conf"], np.float64)
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
    failures) and ``coco_results.json`` (still images only).
    """

    def __init__(self, out: Path, header: dict[str, Any], overlays: bool = True):
        self.out = Path(out)
        self.header = header
        self.joint_set = str(header["joint_set"])
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
        self.coco += [coco_result(frame.image_id, p) for p in people]

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
        """Finish the last video and write predictions.json and coco_results.json; returns the summary."""
        self._finish_video()
        failures = [{"file": str(f.source), "error": f.error} for f in self.failures]
        _compact_json(self.out / "predictions.json", {**self.header, "images": self.images, "videos": self.videos,
                                                       "failures": failures})
        _compact_json(self.out / "coco_results.json", self.coco)
        return {"images": len(self.images), "videos": len(self.videos),
                "frames": sum(v["num_frames"] for v in self.videos),
                "people": sum(len(i["people"]) for i in self.images), "failures": failures, "out": str(self.out)}


def predict_files(predictor: Predictor, files: Sequence[Path], boxes: BoxSource, writer: PredictionWriter,
                  progress: bool = True) -> dict[str, Any]:
    """Predict on every input file with a progress bar; unreadable files are recorded and skipped."""
    from tqdm.auto import tqdm

    total = sum(max(video_info(f)[1], 1) if is_video(f) else 1 for f in files)
    with tqdm(total=total, unit="img", desc="predict", disable=not progress) as bar:
        try:
            for item in predict_stream(predictor, read_frames(files), boxes):
                if isinstance(item, Failure):
                    writer.fail(item)
                else:
                    writer.add(*item)
                bar.update(1)
        finally:
            summary = writer.close()
    return summary
