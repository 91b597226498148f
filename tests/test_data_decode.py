"""Decoding only what the crop reads: the DCT scale never undersamples, labels stay exact, pixels stay close."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from posereg.data import coco, decode, h36m, mpii
from posereg.data.decode import Region, crop_step, crop_window, dct_scale, decode_for_crop, read_image, turbojpeg
from posereg.data.records import make_sample
from posereg.data.transforms import apply_values, augment_preset, denormalize_image, to_tensor_image, warp_image
from posereg.errors import ConfigError, DataError
from posereg.geometry import crop_transform
from posereg.paths import real_slices_dir

SLICES = real_slices_dir()
H36M_KW = {"ann_files": ["test_h36m_body3d.npz"], "camera_file": "cameras.pkl", "image_dir": ".",
           "subjects": ["S1", "S5", "S7", "S8"], "eval_step": 1}
H36M_AUG = augment_preset("default")  # the option conf/data/h36m.yaml composes
H36M_IMAGE = SLICES / "h36m" / "S1" / "S1_Directions_1.54138969" / "S1_Directions_1.54138969_000001.jpg"
MPII_IMAGE = SLICES / "mpii" / "005808361.jpg"  # progressive JPEG
LABELS = ("joints_2d", "joints_3d", "weights", "camera", "crop_to_image", "head_size", "root_depth", "bbox")
needs_turbojpeg = pytest.mark.skipif(turbojpeg() is None, reason="no libturbojpeg >= 3.0 (the turbojpeg wheel)")


def pixels(sample: dict) -> np.ndarray:
    """The sample's crop as int uint8 values."""
    return denormalize_image(sample["image"]).astype(np.int64)


def datasets() -> dict:
    """The three real slices as evaluation datasets at 256x256 (records only; augmentation comes per draw)."""
    return {
        "h36m": h36m.H36MDataset(SLICES / "h36m", split="test", **H36M_KW),
        "mpii": mpii.MPIIDataset(SLICES / "mpii", split="train", ann_file="test_mpii.json", image_dir="."),
        "coco": coco.COCODataset(SLICES / "coco", split="val", ann_file="test_coco.json", image_dir="."),
    }


@pytest.mark.parametrize("rotation", [0.0, 30.0, -45.0, 90.0])
@pytest.mark.parametrize("flip", [False, True])
def test_scale_never_undersamples_the_crop(rotation, flip):
    def scale(side, out=256):
        return dct_scale(crop_transform((500.0, 400.0), side, out, rotation, flip))

    assert scale(300.0) == 1  # a small box: 1.17 source pixels per crop pixel, full resolution
    assert scale(100.0) == 1  # upsampling crop
    assert scale(511.0) == 1 and scale(512.0) == 2  # exactly 2 source pixels per crop pixel allows 1/2
    assert scale(256 * 3.99) == 2 and scale(256 * 4.0) == 4 and scale(256 * 9.0) == 8
    assert dct_scale(crop_transform((500.0, 400.0), (1200.0, 500.0), 256, rotation, flip)) == 1  # the finer axis


def test_scale_bounds_the_step_in_every_direction():
    rng = np.random.default_rng(0)
    directions = np.stack([np.cos(np.linspace(0, np.pi, 181)), np.sin(np.linspace(0, np.pi, 181))], axis=1)
    for _ in range(300):
        size = rng.uniform(50, 3000, size=2)
        out = rng.integers(64, 384, size=2)
        A = crop_transform(rng.uniform(0, 1000, size=2), size, out, rng.uniform(-180, 180), bool(rng.random() < 0.5))
        # source-pixel distance between neighbouring crop pixels along every direction of the crop grid
        steps = np.linalg.norm(directions @ np.linalg.inv(A[:, :2]).T, axis=1)
        assert crop_step(A) == pytest.approx(steps.min(), rel=1e-6)
        s = dct_scale(A)
        assert s == 1 or s <= steps.min() + 1e-9  # 1 also for upsampling crops
        assert s == 8 or 2 * s > steps.min()  # and the coarsest such scale


def test_window_covers_every_bilinear_read():
    A = crop_transform((480.0, 520.0), 430.0, 256, 25.0, True)
    for s in (1, 2, 4):
        x0, y0, x1, y1 = crop_window(A, 256, s, 1000, 1002)
        # crop pixel centres back in the 1/s image; bilinear reads floor(q - 0.5) and the next pixel
        uv = np.stack(np.meshgrid(np.arange(256) + 0.5, np.arange(256) + 0.5), -1).reshape(-1, 2)
        q = (uv @ np.linalg.inv(A[:, :2]).T - np.linalg.inv(A[:, :2]) @ A[:, 2]) / s
        lo, hi = np.floor(q - 0.5).min(0), np.floor(q - 0.5).max(0) + 1
        assert x0 < lo[0] and y0 < lo[1] and x1 - 1 > hi[0] and y1 - 1 > hi[1]  # outermost row/column unread
    assert crop_window(crop_transform((-900.0, 300.0), 200.0, 256), 256, 1, 1000, 1002) is None


@pytest.mark.parametrize("decoder", ["auto", "cv2"])
def test_region_decode_keeps_labels_exact_and_pixels_close(decoder):
    seen: dict[str, set[int]] = {}
    for name, ds in datasets().items():
        for k in range(24):
            rec = ds.records[k % len(ds)]
            scales = []

            def region(A, rec=rec, scales=scales):
                r = decode_for_crop(rec.image, A, 256, "test", decoder)
                scales.append(r.scale)
                return r

            args = (ds.source_joint_set, ds.joint_set, 256, H36M_AUG, np.random.default_rng([3, k]))
            new = make_sample(rec, region, *args)
            old = make_sample(rec, read_image(rec.image, "test"), *args[:-1], np.random.default_rng([3, k]))
            for key in LABELS:
                np.testing.assert_allclose(new[key].numpy(), old[key].numpy(), rtol=0, atol=1e-6, err_msg=key)
            diff = np.abs(pixels(new) - pixels(old))
            if scales[0] == 1:  # the same full-resolution pixels: only the warp's fixed-point rounding differs
                assert diff.mean() < 0.01 and diff.max() <= 2, (name, k)
            else:  # the DCT-reduced image is the low-pass of the full one (see the next test for which is better)
                assert diff.mean() < 4.0, (name, k, scales[0], diff.mean())
            seen.setdefault(name, set()).add(scales[0])
    assert seen["h36m"] == {1, 2} and {1, 2, 4} <= seen["mpii"] and 1 in seen["coco"]


@pytest.mark.parametrize("image", [H36M_IMAGE, MPII_IMAGE], ids=["h36m", "mpii"])
@pytest.mark.parametrize("side, rotation", [(600.0, 0.0), (600.0, 25.0), (1100.0, 10.0)])
def test_reduced_crop_is_closer_to_the_area_average_than_full_resolution_bilinear(image, side, rotation):
    full = read_image(image, "test")
    h, w = full.shape[:2]
    A = crop_transform((w / 2, h / 2), side, 256, rotation)
    region = decode_for_crop(image, A, 256, "test")
    assert region.scale == (2 if side == 600.0 else 4)
    reduced = warp_image(region.pixels, A, 256, region.to_image).astype(np.float64)
    bilinear = warp_image(full, A, 256).astype(np.float64)
    # reference: each crop pixel's footprint averaged, from a 4x supersampled crop of the full image
    A4 = crop_transform((w / 2, h / 2), side, 1024, rotation)
    ref = cv2.resize(warp_image(full, A4, 1024), (256, 256), interpolation=cv2.INTER_AREA).astype(np.float64)
    mad_reduced, mad_bilinear = np.abs(reduced - ref).mean(), np.abs(bilinear - ref).mean()
    assert mad_reduced < 0.9 * mad_bilinear  # measured 0.74-0.84 of it (the reduced decode does not alias)
    assert mad_reduced < 2.5


@needs_turbojpeg
def test_window_decode_equals_the_full_decode_where_the_warp_reads():
    data = H36M_IMAGE.read_bytes()
    tj = turbojpeg()
    A = crop_transform((470.0, 440.0), 430.0, 256, 20.0)
    for s in (1, 2, 4):  # any scale: this checks the window against the whole image at the same scale
        whole = tj.decode(data, s, lambda w, h, s=s: (0, 0, -(-w // s), -(-h // s)))
        assert whole.pixels.shape[:2] == (-(-1002 // s), -(-1000 // s))
        if s == 1:  # libjpeg-turbo's full decode is PIL's, bit for bit
            np.testing.assert_array_equal(whole.pixels[..., :3], read_image(H36M_IMAGE, "test"))
        part = tj.decode(data, s, lambda w, h, s=s: crop_window(A, 256, s, w, h))
        assert part.x0 % (16 // s) == 0 and part.pixels[..., 0].size < whole.pixels[..., 0].size / 2
        inner = part.pixels[:, 1:-1]  # the window's outermost columns lack their chroma neighbours
        ref = whole.pixels[part.y0:part.y0 + inner.shape[0], part.x0 + 1:part.x0 + 1 + inner.shape[1]]
        np.testing.assert_array_equal(inner, ref)
        a = warp_image(part.pixels, A, 256, part.to_image).astype(int)
        b = warp_image(whole.pixels, A, 256, whole.to_image).astype(int)
        assert np.abs(a - b).max() <= 1 and np.abs(a - b).mean() < 0.01


def test_fused_photometric_lookup_equals_applying_it_first():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    values = np.trunc(np.clip(np.arange(256, dtype=np.float32)[:, None] * np.float32([1.1, 0.9, 1.2]) + 7, 0, 255))
    values = values.astype(np.float32)
    np.testing.assert_array_equal(to_tensor_image(image, values=values), to_tensor_image(apply_values(image, values)))


def test_files_the_fast_decoders_refuse_go_through_pil(tmp_path):
    A = crop_transform((300.0, 250.0), 600.0, 256)  # 2.3 source pixels per crop pixel
    png = tmp_path / "frame.png"
    Image.open(H36M_IMAGE).save(png)
    cmyk = tmp_path / "cmyk.jpg"
    Image.open(H36M_IMAGE).convert("CMYK").save(cmyk, quality=90)
    for path in (png, cmyk):
        region = decode_for_crop(path, A, 256, "test")
        assert region.scale == 1 and region.to_image.tolist() == [[1, 0, 0], [0, 1, 0]]
        np.testing.assert_array_equal(region.pixels, read_image(path, "test"))
    assert decode_for_crop(H36M_IMAGE, A, 256, "test").scale == 2
    assert decode_for_crop(H36M_IMAGE, A, 256, "test", decoder="pil").scale == 1


@pytest.mark.parametrize("decoder", ["auto", "cv2", "pil"])
def test_truncated_and_empty_jpegs_raise_naming_the_file(tmp_path, decoder):
    A = crop_transform((470.0, 300.0), 200.0, 256)  # a window in the top third: a region decode never reaches the cut
    data = H36M_IMAGE.read_bytes()
    cut, empty = tmp_path / "cut.jpg", tmp_path / "empty.jpg"
    cut.write_bytes(data[: 2 * len(data) // 3])
    empty.write_bytes(b"")
    for path in (cut, empty, tmp_path / "missing.jpg"):
        with pytest.raises(DataError, match=rf"where: image .*{path.name} (cannot be decoded|does not exist)"):
            decode_for_crop(path, A, 256, "where", decoder)


@pytest.fixture
def h36m_root(tmp_path: Path) -> Path:
    shutil.copytree(SLICES / "h36m", tmp_path / "h36m")
    return tmp_path / "h36m"


def test_unreadable_images_are_skipped_only_while_training(h36m_root):
    bad = h36m_root / "S5" / "S5_SittingDown.54138969" / "S5_SittingDown.54138969_002061.jpg"
    bad.write_bytes(bad.read_bytes()[:5000])
    kw = {**H36M_KW, "input_size": 32}
    train = h36m.H36MDataset(h36m_root, split="train", **kw)
    with pytest.raises(DataError, match=r"S5_SittingDown.*cannot be decoded.*set skip_bad_records=true"):
        train[1]
    train = h36m.H36MDataset(h36m_root, split="train", skip_bad_records=True, **kw)
    with pytest.warns(UserWarning, match=r"skipping an unreadable image .*S5_SittingDown.*cannot be decoded"):
        sample = train[1]
    assert sample["meta"]["subject"] == "S7"  # the next record
    assert [train[i]["meta"]["subject"] for i in range(4)] == ["S1", "S7", "S7", "S8"]
    test = h36m.H36MDataset(h36m_root, split="test", skip_bad_records=True, **kw)
    with pytest.raises(DataError, match=r"cannot be decoded.*evaluation never skips records"):
        test[1]


def test_decoder_setting_and_library_override(monkeypatch):
    with pytest.raises(ConfigError, match=r"decoder='nvjpeg'"):
        decode.check_decoder("nvjpeg")
    monkeypatch.setenv("POSEREG_TURBOJPEG", "off")
    decode.turbojpeg.cache_clear()
    try:
        assert decode.turbojpeg() is None
        with pytest.raises(ConfigError, match="no libturbojpeg >= 3.0 found"):
            decode.check_decoder("turbojpeg")
        A = crop_transform((470.0, 440.0), 600.0, 256, 15.0)
        region = decode_for_crop(H36M_IMAGE, A, 256, "test")  # auto falls back to OpenCV's DCT scaling
        assert isinstance(region, Region) and region.scale == 2 and region.pixels.shape == (501, 500, 3)
    finally:
        monkeypatch.delenv("POSEREG_TURBOJPEG")
        decode.turbojpeg.cache_clear()
