"""What posereg-predict reads: the files of `input=` (images, folders, globs, videos), their frames, and a camera.

A still image's ``image_id`` is its file stem as an int when it is all digits (COCO's names), else the stem;
a video's frames are numbered from 0. An unreadable file becomes one `Failure` and the other inputs go on; so
does an image or video whose header claims more than `max_pixels` pixels (checked before anything is decoded,
so memory stays bounded: a 164 KB PNG can hold 13000x13000 pixels).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posereg.data.decode import read_image
from posereg.errors import ConfigError, DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


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


def check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    """DataError naming the file when width x height exceeds `max_pixels` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(f"input: {path} is {width}x{height} = {width * height / 1e6:.1f} M pixels, more than "
                        f"max_pixels={max_pixels}: skipped (raise max_pixels= to read it)")


def image_header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image's header, without decoding its pixels; DataError when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # lazy: reads the header only
            return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as err:  # PIL's own limit (twice its MAX_IMAGE_PIXELS), hit while opening
        raise DataError(f"input: {path} claims too many pixels to read ({err})") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(f"input: image {path} cannot be decoded ({err})") from None


def read_frames(files: Sequence[Path], max_pixels: int | None = None) -> Iterator[Frame | Failure]:
    """Frames of the inputs in order; an unreadable file, or one whose header claims more than `max_pixels`, gives
    one Failure and the rest go on."""
    import cv2

    for f in files:
        if not is_video(f):
            try:
                check_pixels(f, *image_header_size(f), max_pixels)
                yield Frame(f, read_image(f, "input"), image_key(f.name))
            except DataError as err:
                yield Failure(f, str(err))
            continue
        cap = cv2.VideoCapture(str(f))
        if not cap.isOpened():
            yield Failure(f, f"input: video {f} cannot be opened by OpenCV")
            continue
        try:
            check_pixels(f, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), max_pixels)
        except DataError as err:
            cap.release()
            yield Failure(f, str(err))
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
