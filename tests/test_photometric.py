"""The photometric augmentation equals albumentations' ops; the fused lookup + normalization equals the steps."""

import albucore
import numpy as np
import pytest
from albumentations.augmentations.blur.functional import create_gaussian_kernel_1d

from posereg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Photometric,
    PhotometricDraw,
    apply_values,
    augment_preset,
    gaussian_kernel_1d,
    identity_values,
    to_tensor_image,
)

RAMP = np.ascontiguousarray(np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2))


def _draw(cb=None, gain=None) -> PhotometricDraw:
    return PhotometricDraw(contrast_brightness=cb, gain=gain, blur=None, noise=None, noise_std=0.0, dropout_seed=None)


def test_pointwise_part_is_albucores_brightness_contrast_then_gain():
    rng = np.random.default_rng(0)
    for _ in range(200):
        alpha, beta = 1 + rng.uniform(-0.3, 0.3), 255 * rng.uniform(-0.3, 0.3)
        gain = rng.uniform(0.7, 1.3, 3).astype(np.float32)
        expected = albucore.multiply(albucore.multiply_add(RAMP, alpha, beta), gain)
        assert np.array_equal(apply_values(RAMP, _draw((alpha, beta), gain).values(identity_values())), expected)
        assert np.array_equal(apply_values(RAMP, _draw(gain=gain).values(identity_values())),
                              albucore.multiply(RAMP, gain))


def test_blur_kernel_and_gaussian_noise_follow_albumentations():
    for sigma in (0.3, 0.75, 1.2):
        for k in (3, 5):
            assert np.allclose(gaussian_kernel_1d(sigma, k), create_gaussian_kernel_1d(sigma, k), atol=1e-12)
    ph = Photometric(augment_preset("synth", photometric_prob=0.0, blur_prob=0.0, noise_prob=1.0))
    img = np.full((64, 64, 3), 128, np.uint8)
    draws = [ph.draw(np.random.default_rng(i), img.shape) for i in range(300)]
    stds = np.array([d.noise_std for d in draws])
    assert stds.min() >= 0.01 * 255 and stds.max() <= 0.05 * 255 and stds.max() - stds.min() > 0.03 * 255
    d = draws[0]
    out = ph(img, np.random.default_rng(0)).astype(np.float64) - 128
    assert out.mean() == pytest.approx(0.0, abs=0.2) and out.std() == pytest.approx(d.noise_std, rel=0.05)
    assert np.array_equal(out, np.rint(d.noise * d.noise_std))  # rounded, nothing near the uint8 limits


def test_photometric_rates_and_ranges():
    aug = augment_preset("synth", photometric_prob=0.8, blur_prob=0.1, noise_prob=0.1, occlusion_prob=0.3)
    ph = Photometric(aug)
    draws = [ph.draw(np.random.default_rng(i), (32, 32, 3)) for i in range(2000)]
    assert np.mean([d.contrast_brightness is not None for d in draws]) == pytest.approx(0.8, abs=0.03)
    assert np.mean([d.gain is not None for d in draws]) == pytest.approx(0.8, abs=0.03)
    assert np.mean([d.blur is not None for d in draws]) == pytest.approx(0.1, abs=0.02)
    assert np.mean([d.noise is not None for d in draws]) == pytest.approx(0.1, abs=0.02)
    assert np.mean([d.dropout_seed is not None for d in draws]) == pytest.approx(0.3, abs=0.03)
    cb = np.array([d.contrast_brightness for d in draws if d.contrast_brightness is not None])
    assert np.abs(cb[:, 0] - 1).max() <= 0.2 and np.abs(cb[:, 1]).max() <= 0.2 * 255
    gains = np.concatenate([d.gain for d in draws if d.gain is not None])
    assert gains.min() >= 0.8 and gains.max() <= 1.2
    sizes = {len(d.blur) for d in draws if d.blur is not None}
    assert sizes == {3, 5}  # albumentations' randint(3, 5), even sizes rounded up


def test_fused_to_tensor_equals_lookup_then_noise_then_normalization():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    noise = rng.standard_normal((3, 24, 24)).astype(np.float32)
    values = _draw((1.1, 12.0), np.array([0.9, 1.0, 1.15], np.float32)).values(identity_values())
    got = to_tensor_image(img, noise, values, noise_scale=2.5)
    x = apply_values(img, values).transpose(2, 0, 1).astype(np.float64) + 2.5 * noise
    expected = (x / 255.0 - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    assert got.dtype == np.float32 and got.shape == (3, 24, 24)
    assert np.abs(got - expected).max() < 1e-5
    plain = to_tensor_image(img)
    assert np.abs(plain - (img.transpose(2, 0, 1) / 255.0 - IMAGENET_MEAN[:, None, None])
                  / IMAGENET_STD[:, None, None]).max() < 1e-5
