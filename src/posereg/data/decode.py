"""Decode only the pixels a crop needs: the JPEG region under the crop, DCT-scaled when the crop samples coarsely.

A crop made by the image->crop affine ``A`` steps ``crop_step(A)`` original pixels (or more) between
neighbouring crop pixels, whatever its rotation. A JPEG decoded at ``1/s`` in its DCT domain
(libjpeg-turbo scales each 8x8 block to (8/s)x(8/s)) has pixel ``k`` covering original pixels
``[k*s, (k+1)*s)``, so :func:`dct_scale` picks the largest ``s`` in (1, 2, 4, 8) with ``s <= step``:
the decoded image never holds less detail than the crop samples. A :class:`Region` also records
the offset of the decoded window, so ``Region.to_image`` (region pixels -> original pixels,
continuous convention) composed with ``A`` warps the region into exactly the crop the full image
gives; labels, cameras and ``crop_to_image`` never see the decode and stay those of ``A``.

Decoders, fastest first (``decoder="auto"`` takes the first that handles the file):

* ``turbojpeg``: libjpeg-turbo >= 3.0 through its TurboJPEG C API (ctypes): DCT scaling plus
  partial decompression (``tj3SetCroppingRegion``: rows above the window are only entropy-decoded,
  rows below are never read, columns outside get no IDCT or colour conversion). The library is
  taken from ``$POSEREG_TURBOJPEG`` (a path, or ``off``), else the one shipped inside the
  ``turbojpeg`` wheel, else a system ``libturbojpeg``;
* ``cv2``: OpenCV's libjpeg-turbo with DCT scaling (``IMREAD_REDUCED_*``), the whole image;
* ``pil``: :func:`read_image` (PIL), the full decode used before; it also takes
  every file the others refuse (not a JPEG, CMYK, 12-bit, corrupt or truncated data) and so
  defines the errors.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from posereg.errors import ConfigError, DataError
from posereg.geometry import invert_affine, warp_size

SCALES = (1, 2, 4, 8)
DECODERS = ("auto", "turbojpeg", "cv2", "pil")
_SOI, _EOI = b"\xff\xd8\xff", b"\xff\xd9"


@dataclass(frozen=True)
class Region:
    """Decoded pixels of a window of an image: pixel column j covers original x in [s*(x0+j), s*(x0+j+1))."""

    pixels: np.ndarray  # (h, w, 3) uint8 RGB, or (h, w, 4) RGBX
    scale: int = 1  # s: original pixels per decoded pixel
    x0: int = 0  # window offset, in decoded pixels
    y0: int = 0

    @property
    def to_image(self) -> np.ndarray:
        """(2,3) affine from region pixels to original image pixels, continuous convention."""
        s = float(self.scale)
        return np.array([[s, 0.0, s * self.x0], [0.0, s, s * self.y0]])


def crop_step(A: Any) -> float:
    """Smallest distance in original pixels between neighbouring crop pixels: 1 / largest singular value of A."""
    (a, b, _), (c, d, _) = np.asarray(A, dtype=np.float64).tolist()
    sq, det = a * a + b * b + c * c + d * d, a * d - b * c
    return 1.0 / math.sqrt((sq + math.sqrt(max(sq * sq - 4.0 * det * det, 0.0))) / 2.0)


def dct_scale(A: Any) -> int:
    """Largest DCT scale s in SCALES with s <= crop_step(A): the reduced image still resolves every crop pixel."""
    step = crop_step(A) * (1.0 + 1e-9)  # a step of exactly 2.0 computed as 1.999... still allows s = 2
    return max((s for s in SCALES if s <= step), default=1)


def crop_window(A: Any, out_size: Any, scale: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) in pixels of the 1/scale image that the bilinear crop reads; None when it misses the image.

    The crop's corners mapped back into the image bound every sampled position, and the bilinear
    neighbours lie within one reduced pixel of that box. The window adds two: where a window edge
    lies inside the image, libjpeg-turbo's partial decompression upsamples the chroma of its
    outermost column without the neighbour beyond, so that column (and row) is never read.
    """
    w, h = warp_size(out_size)
    (a, b, tx), (c, d, ty) = invert_affine(np.asarray(A, dtype=np.float64)).tolist()
    xs = [(a * u + b * v + tx) / scale for u, v in ((0, 0), (w, 0), (0, h), (w, h))]
    ys = [(c * u + d * v + ty) / scale for u, v in ((0, 0), (w, 0), (0, h), (w, h))]
    sw, sh = -(-width // scale), -(-height // scale)
    x0, y0 = max(0, math.floor(min(xs) - 2.0)), max(0, math.floor(min(ys) - 2.0))
    x1, y1 = min(sw, math.ceil(max(xs) + 2.0)), min(sh, math.ceil(max(ys) + 2.0))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


class TurboJPEG:
    """The TurboJPEG 3 API of libjpeg-turbo (ctypes): header, DCT-scaled decode of a window, RGB out."""

    _MCU_WIDTH = (8, 16, 16, 8, 8, 32, 8)  # tjMCUWidth by TJSAMP: 444, 422, 420, gray, 440, 411, 441
    _DECOMPRESS, _STOP_ON_WARNING, _SUBSAMP, _WIDTH, _HEIGHT, _PF_RGBX = 1, 0, 4, 5, 6, 2

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        lib.tj3Init.restype = ctypes.c_void_p
        lib.tj3Init.argtypes = [ctypes.c_int]
        lib.tj3Destroy.argtypes = [ctypes.c_void_p]
        lib.tj3Set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.tj3Get.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.tj3DecompressHeader.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.tj3SetScalingFactor.argtypes = [ctypes.c_void_p, _ScalingFactor]
        lib.tj3SetCroppingRegion.argtypes = [ctypes.c_void_p, _CropRegion]
        lib.tj3Decompress8.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                       ctypes.c_int, ctypes.c_int]
        lib.tj3GetErrorStr.restype = ctypes.c_char_p
        lib.tj3GetErrorStr.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.path = path
        self._local = threading.local()

    def _handle(self) -> int:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self.lib.tj3Init(self._DECOMPRESS)
            if not handle:
                raise OSError(f"tj3Init failed in {self.path}")
            # warnings (corrupt or truncated data) fail the fast path: read_image then decides as before
            self.lib.tj3Set(handle, self._STOP_ON_WARNING, 1)
            self._local.handle = handle
        return handle

    def _check(self, status: int, handle: int) -> None:
        if status != 0:
            raise ValueError(self.lib.tj3GetErrorStr(handle).decode(errors="replace"))

    def header(self, data: bytes) -> tuple[int, int, int]:
        """(width, height, TJSAMP subsampling) of a JPEG; ValueError when libjpeg-turbo cannot read it."""
        handle = self._handle()
        self._check(self.lib.tj3DecompressHeader(handle, data, len(data)), handle)
        lib = self.lib
        return lib.tj3Get(handle, self._WIDTH), lib.tj3Get(handle, self._HEIGHT), lib.tj3Get(handle, self._SUBSAMP)

    def decode(self, data: bytes, scale: int, window: Callable[[int, int], tuple[int, int, int, int] | None]
               ) -> Region | None:
        """The window(width, height) of the 1/scale image as a Region (None when the window is empty)."""
        handle = self._handle()
        width, height, subsamp = self.header(data)
        box = window(width, height)
        if box is None:
            return None
        sw, sh = -(-width // scale), -(-height // scale)
        x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(sw, box[2]), min(sh, box[3])
        lib = self.lib
        self._check(lib.tj3SetScalingFactor(handle, _ScalingFactor(1, scale)), handle)
        if 0 <= subsamp < len(self._MCU_WIDTH):
            mcu = -(-self._MCU_WIDTH[subsamp] // scale)  # the window's left edge sits on a scaled iMCU column
            x0 -= x0 % mcu
        else:
            x0, x1 = 0, sw  # unknown subsampling: whole rows
        w, h = x1 - x0, y1 - y0
        self._check(lib.tj3SetCroppingRegion(handle, _CropRegion(x0, y0, w, h)), handle)
        # RGBX: libjpeg-turbo writes it as fast as RGB, and OpenCV warps 4 channels much faster than 3
        out = np.empty((h, w, 4), dtype=np.uint8)
        self._check(lib.tj3Decompress8(handle, data, len(data), out.ctypes.data, w * 4, self._PF_RGBX), handle)
        return Region(out, scale, x0, y0)


class _ScalingFactor(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("denom", ctypes.c_int)]


class _CropRegion(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


def _library_candidates() -> list[str]:
    """Paths or names to try for libturbojpeg, in order."""
    env = os.environ.get("POSEREG_TURBOJPEG", "")
    if env.lower() in ("0", "off", "false", "no", "none"):
        return []
    if env:
        return [env]
    out = []
    try:  # the `turbojpeg` wheel (pybind11 bindings) ships libjpeg-turbo 3 as a shared library
        files = importlib.metadata.distribution("turbojpeg").files or []
        out += [str(f.locate()) for f in files if Path(str(f)).name.startswith("libturbojpeg")]
    except importlib.metadata.PackageNotFoundError:
        pass
    system = ctypes.util.find_library("turbojpeg")
    return [*out, system] if system else out


@lru_cache(maxsize=1)
def turbojpeg() -> TurboJPEG | None:
    """The first libturbojpeg with the TurboJPEG 3 API (partial decompression), or None."""
    for path in _library_candidates():
        try:
            tj = TurboJPEG(path)
        except (OSError, AttributeError):  # missing file, or a 2.x library without the tj3 functions
            continue
        return tj
    return None


_CV2_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
              8: cv2.IMREAD_REDUCED_COLOR_8}
_CV2_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 hands RGB out of libjpeg directly


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(sample precision, number of components) from the JPEG's start-of-frame marker, None if there is none."""
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn (not DHT, JPG, DAC)
            return data[i + 4], data[i + 9]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_cv2(data: bytes, scale: int) -> Region | None:
    """The whole 1/scale image decoded by OpenCV (EXIF orientation ignored, as PIL does); None if it fails.

    Only 8-bit grey or 3-component JPEGs: OpenCV converts CMYK and 12-bit data otherwise than PIL.
    """
    if jpeg_frame(data) not in ((8, 1), (8, 3)):
        return None
    flags = _CV2_FLAGS[scale] | cv2.IMREAD_IGNORE_ORIENTATION
    if _CV2_RGB is not None:
        flags = (flags & ~cv2.IMREAD_COLOR) | _CV2_RGB  # the RGB bit replaces the BGR one
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        return None
    if _CV2_RGB is None:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return Region(pixels, scale)


def is_complete_jpeg(data: bytes) -> bool:
    """Starts with SOI and ends with EOI (the fast decoders stop early or fill missing rows: truncation shows here)."""
    return data.startswith(_SOI) and data.rstrip(b"\x00\r\n ").endswith(_EOI)


def check_decoder(decoder: str, setting: str = "decoder") -> str:
    """decoder, or a ConfigError naming the setting (also when ``turbojpeg`` is asked for and not found)."""
    if decoder not in DECODERS:
        raise ConfigError(f"{setting}={decoder!r}: use one of {list(DECODERS)}")
    if decoder == "turbojpeg" and turbojpeg() is None:
        raise ConfigError(f"{setting}=turbojpeg: no libturbojpeg >= 3.0 found (install the `turbojpeg` wheel, a "
                          "system libjpeg-turbo 3, or set POSEREG_TURBOJPEG=/path/to/libturbojpeg.so); "
                          "use auto, cv2 or pil")
    return decoder


def read_image(path: Path | str, where: str) -> np.ndarray:
    """RGB uint8 (H,W,3) pixels of an image file; DataError naming it when missing, unreadable or truncated."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: image {path} does not exist; check the dataset root and image folder")
    try:
        with Image.open(path) as im:
            im.load()  # decodes everything: a truncated file raises here, not later
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{where}: image {path} cannot be decoded ({e}); re-extract or replace the file") from None
    return np.asarray(rgb, dtype=np.uint8)


def image_size(path: Path | str, where: str) -> tuple[int, int]:
    """(width, height) read from the image header (never from annotation or camera files)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: image {path} does not exist; check the dataset root and image folder")
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{where}: image {path} cannot be opened ({e})") from None


def decode_for_crop(path: Path | str, A: Any, out_size: Any, where: str, decoder: str = "auto") -> Region:
    """The pixels of the image at path that the crop A (image -> out_size crop) reads, as a Region.

    ``pil`` (and any file the fast decoders do not take) decodes the whole image at full size
    through :func:`read_image`, which raises the DataError naming the file.
    """

    region = None if decoder == "pil" else _decode_fast(path, A, out_size, decoder)
    return region if region is not None else Region(read_image(path, where))


def _decode_fast(path: Path | str, A: Any, out_size: Any, decoder: str) -> Region | None:
    """The crop's pixels by turbojpeg or cv2; None unless the file is a complete JPEG they decode without warnings."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not is_complete_jpeg(data):
        return None
    scale = dct_scale(A)
    tj = turbojpeg() if decoder in ("auto", "turbojpeg") else None
    try:
        if tj is not None:
            region = tj.decode(data, scale, lambda w, h: crop_window(A, out_size, scale, w, h))
            # None: the crop reads no pixel of the image, so any black pixel warps to the same all-border crop
            return region if region is not None else Region(np.zeros((1, 1, 3), dtype=np.uint8))
        return decode_cv2(data, scale) if decoder in ("auto", "cv2") else None
    except ValueError:  # refused by libjpeg-turbo (CMYK, 12-bit, corrupt data): read_image decides as before
        return None
